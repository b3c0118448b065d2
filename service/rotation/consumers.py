"""Who reads which version of a secret: aggregated in memory, flushed in bulk.

`record` runs on every secret read, so it does O(1) work under a lock that is
never held across an await: one dict lookup and three field updates. A
background flush swaps the aggregate out and upserts it into the store, where
the first read, the last read and the count of every (service, secret,
version) are kept. A failed flush puts its data back for the next one.

Each read also notes its token (rotation/token_reads.py), flushed with the
aggregate, so that a compromise can revoke the tokens that read a version.
Whoever must act on freshly flushed token reads registers in `on_flushed`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import Engine, case, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from service.clock import Clock, utc
from service.rotation.token_reads import TokenReads, Version
from service.store.rotation_tables import rotation_consumers as table

if TYPE_CHECKING:
    from service.tokens import Principal

log = structlog.get_logger(__name__)

Key = tuple[str, str, str, str]


@dataclass(frozen=True, slots=True)
class Consumer:
    """What one service read of one version of a secret."""

    service: str
    version: str
    first_read_at: float
    last_read_at: float
    reads: int


class ConsumerTracker:
    """The read aggregate of one broker process, and the store behind it."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending: dict[Key, list[float]] = {}
        self.tokens = TokenReads(engine, clock)
        # Called after each flush with the versions whose token reads it wrote
        # (the compromise response checks them against what is compromised).
        self.on_flushed: list[Callable[[set[Version]], None]] = []
        dialect = sqlite if engine.dialect.name == "sqlite" else postgresql
        self._insert = dialect.insert

    def record(self, env: str, secret: str, version: str, principal: Principal) -> None:
        """Count one read and note its token; never touches the store."""
        now = self._clock.now()
        service = principal.service
        key = (env, secret, version, service)
        with self._lock:
            entry = self._pending.get(key)
            if entry is None:
                self._pending[key] = [now, now, 1.0]
            else:
                entry[1] = now
                entry[2] += 1
        self.tokens.record(
            env, secret, version, service, principal.jti, principal.expires_at
        )

    def flush(self) -> int:
        """Write the aggregate to the store; answer how many rows were written."""
        with self._flush_lock:
            written = self._flush_aggregate()
            versions = self.tokens.flush()
        if versions:
            for flushed in self.on_flushed:
                flushed(versions)
        return written

    def consumers(self, env: str, secret: str) -> list[Consumer]:
        """Every (service, version) that read the secret, this process's included."""
        self.flush()
        query = (
            select(table)
            .where(table.c.env == env, table.c.secret == secret)
            .order_by(table.c.service, table.c.last_read_at)
        )
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            Consumer(
                row.service,
                row.version,
                row.first_read_at.timestamp(),
                row.last_read_at.timestamp(),
                int(row.reads),
            )
            for row in rows
        ]

    def _flush_aggregate(self) -> int:
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        try:
            self._upsert(pending)
        except SQLAlchemyError as error:
            self._put_back(pending)
            log.warning("consumers_flush_failed", error_type=type(error).__name__)
            return 0
        return len(pending)

    def _upsert(self, pending: dict[Key, list[float]]) -> None:
        rows = [
            {
                "env": env,
                "secret": secret,
                "version": version,
                "service": service,
                "first_read_at": utc(first),
                "last_read_at": utc(last),
                "reads": int(count),
            }
            for (env, secret, version, service), (first, last, count) in sorted(
                pending.items()
            )
        ]
        statement = self._insert(table)
        statement = statement.on_conflict_do_update(
            index_elements=["env", "secret", "version", "service"],
            set_={
                "first_read_at": case(
                    (
                        statement.excluded.first_read_at < table.c.first_read_at,
                        statement.excluded.first_read_at,
                    ),
                    else_=table.c.first_read_at,
                ),
                "last_read_at": case(
                    (
                        statement.excluded.last_read_at > table.c.last_read_at,
                        statement.excluded.last_read_at,
                    ),
                    else_=table.c.last_read_at,
                ),
                "reads": table.c.reads + statement.excluded.reads,
            },
        )
        with self._engine.begin() as connection:
            connection.execute(statement, rows)

    def _put_back(self, pending: dict[Key, list[float]]) -> None:
        with self._lock:
            for key, (first, last, count) in pending.items():
                entry = self._pending.get(key)
                if entry is None:
                    self._pending[key] = [first, last, count]
                else:
                    entry[0] = min(entry[0], first)
                    entry[1] = max(entry[1], last)
                    entry[2] += count
