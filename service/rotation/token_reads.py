"""Which tokens read which version of a secret, for as long as those tokens live.

A compromised version is answered by revoking the tokens that read it, by id,
so every read also notes its token. `record` runs on the secret-read path: one
dict store under a lock that is never held across an await, and never the
store. The flush that writes the read aggregate (rotation/consumers.py) writes
these too, in bulk. Only tokens that can still be used matter: a row is kept
until its token expires, and `prune` deletes it after.

Memory is bounded by `max_pending` distinct (version, token) pairs between two
flushes. Past it, a token is not listed one by one: its (version, service) is
marked `*` with the latest expiry among such tokens, and a compromise revokes
every token of that service (a watermark) since it cannot name them.
"""

from __future__ import annotations

import threading
from typing import Final

import structlog
from sqlalchemy import Engine, case, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from service.clock import Clock, utc
from service.store.compromise_tables import token_reads as table

log = structlog.get_logger(__name__)

# (env, secret, version, service, jti)
Key = tuple[str, str, str, str, str]
# (env, secret, version)
Version = tuple[str, str, str]

UNLISTED: Final = "*"
MAX_PENDING: Final = 100_000
# Rows stay this long past their token's expiry, for clocks a little apart.
PRUNE_SLACK_SECONDS: Final = 60.0


class TokenReads:
    """The token side of one process's read aggregate, and the store behind it."""

    def __init__(
        self, engine: Engine, clock: Clock, *, max_pending: int = MAX_PENDING
    ) -> None:
        self._engine = engine
        self._clock = clock
        self.max_pending = max_pending
        self._lock = threading.Lock()
        self._pending: dict[Key, float] = {}
        dialect = sqlite if engine.dialect.name == "sqlite" else postgresql
        self._insert = dialect.insert

    def record(
        self,
        env: str,
        secret: str,
        version: str,
        service: str,
        jti: str,
        expires_at: float,
    ) -> None:
        """Note that a token read a version; never touches the store."""
        key = (env, secret, version, service, jti)
        with self._lock:
            if key in self._pending:
                return
            if len(self._pending) < self.max_pending:
                self._pending[key] = expires_at
                return
            unlisted = (env, secret, version, service, UNLISTED)
            if self._pending.get(unlisted, 0.0) < expires_at:
                self._pending[unlisted] = expires_at

    def pending(self) -> int:
        """How many (version, token) pairs wait for the next flush."""
        return len(self._pending)

    def flush(self) -> set[Version]:
        """Write what was noted; answer the versions it named (none on failure)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return set()
        try:
            self._upsert(pending)
        except SQLAlchemyError as error:
            self._put_back(pending)
            log.warning("token_reads_flush_failed", error_type=type(error).__name__)
            return set()
        if any(key[4] == UNLISTED for key in pending):
            log.warning("token_reads_unlisted", max_pending=self.max_pending)
        return {key[:3] for key in pending}

    def prune(self) -> int:
        """Delete the rows of tokens that have expired; answer how many."""
        cutoff = utc(self._clock.now() - PRUNE_SLACK_SECONDS)
        with self._engine.begin() as connection:
            deleted = connection.execute(
                delete(table).where(table.c.expires_at < cutoff)
            ).rowcount
        if deleted:
            log.info("token_reads_pruned", deleted=deleted)
        return int(deleted)

    def _upsert(self, pending: dict[Key, float]) -> None:
        rows = [
            {
                "env": env,
                "secret": secret,
                "version": version,
                "service": service,
                "jti": jti,
                "expires_at": utc(expires_at),
            }
            for (env, secret, version, service, jti), expires_at in sorted(
                pending.items()
            )
        ]
        statement = self._insert(table)
        # A jti's expiry never changes; only an unlisted row's moves, forward.
        statement = statement.on_conflict_do_update(
            index_elements=["env", "secret", "version", "service", "jti"],
            set_={
                "expires_at": case(
                    (
                        statement.excluded.expires_at > table.c.expires_at,
                        statement.excluded.expires_at,
                    ),
                    else_=table.c.expires_at,
                )
            },
        )
        with self._engine.begin() as connection:
            connection.execute(statement, rows)

    def _put_back(self, pending: dict[Key, float]) -> None:
        with self._lock:
            for key, expires_at in pending.items():
                if self._pending.get(key, 0.0) < expires_at:
                    self._pending[key] = expires_at
