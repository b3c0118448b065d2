"""Every broker process drops a secret's cached versions once any process changed it.

Each process keeps what it read for a few seconds (service/secret_access.py).
The process that writes a secret, finishes or abandons a rotation of it,
retires its previous version, or is asked to refresh it drops its own cached
versions at once and announces the change: a row of `secret_changes` and, on
PostgreSQL, a notification in the same transaction on the revocation feed's
channel (service/store/notify.py). Every other process drops its cached
versions of the secret on the notification, milliseconds after the commit, or
on its next look at the table: a chore of the feed every
`revocation.poll_seconds`, reading back `lookback_seconds` for slow commits
and clocks a little apart. The poll is the fallback when a notification is
lost or a listener is reconnecting, and the only path on SQLite.

Bound: as for a revocation, every other process drops the versions within
`poll_seconds` plus one query (0.5 s by default) even without the push. A
change that cannot be recorded (the store is unreachable at that moment) is
logged and not announced; the other processes then serve what they cached
for at most the cache's lifetime, which bounds every cached read anyway.

A process applies each change once: it remembers the ids it applied, its own
among them, for as long as a poll can find them again.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Collection
from enum import StrEnum
from typing import Any, Final

import structlog
from sqlalchemy import Engine, delete, insert, select

from service.clock import Clock, utc
from service.revocation_feed import Chore, RevocationFeed, RevocationSettings
from service.store.notify import notify
from service.store.secret_change_tables import secret_changes as table

log = structlog.get_logger(__name__)

MESSAGE_TYPE: Final = "secret"
# Rows are deleted this long after no poll can read them back any more, so
# that a process whose poll ran late still finds them.
PRUNE_SLACK_SECONDS: Final = 60.0


class Cause(StrEnum):
    """What changed a secret's versions."""

    WRITE = "write"
    ROTATION = "rotation"
    RETIREMENT = "retirement"
    REFRESH = "refresh"


class SecretChanges:
    """Announces this process's secret changes; applies every other's."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        settings: RevocationSettings,
        *,
        envs: Collection[str],
        forget: Callable[[str, str], None],
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._settings = settings
        self._envs = frozenset(envs)
        self._forget = forget
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()
        # Change id -> when this process applied (or made) it.
        self._applied: dict[str, float] = {}
        # A process starts with an empty cache: older changes concern it not.
        self._polled_from = clock.now()

    def attach(self, feed: RevocationFeed) -> None:
        """Act on the feed's announcements; poll and prune on its thread."""
        feed.handlers[MESSAGE_TYPE] = self.handle
        settings = self._settings
        feed.chores.append(Chore("secret_changes", settings.poll_seconds, self.poll))
        feed.chores.append(
            Chore("secret_changes_prune", settings.prune_seconds, self.prune)
        )

    def announce(self, env: str, name: str, cause: Cause) -> str:
        """Tell every other process that `name` changed; answer the change's id.

        The caller has dropped this process's cached versions already. Raises
        SQLAlchemyError when the store cannot record the change.
        """
        change_id = uuid.uuid4().hex
        now = self._clock.now()
        with self._lock:
            self._applied[change_id] = now
        with self._engine.begin() as connection:
            connection.execute(
                insert(table).values(
                    id=change_id, env=env, secret=name, cause=cause.value,
                    changed_at=utc(now),
                )
            )  # fmt: skip
            notify(
                connection,
                {"type": MESSAGE_TYPE, "env": env, "secret": name,
                 "cause": cause.value, "id": change_id},
            )  # fmt: skip
        log.debug(
            "secret_change_announced",
            env=env,
            secret=name,
            cause=cause.value,
            change_id=change_id,
        )
        return change_id

    def handle(self, message: dict[str, Any]) -> None:
        """An announcement from another process (or this one's own, again)."""
        env = str(message["env"])
        if env in self._envs:
            self._apply(
                str(message["id"]), env, str(message["secret"]),
                str(message["cause"]), "push",
            )  # fmt: skip

    def poll(self) -> int:
        """Apply the changes recorded since the last look that this process
        has not applied yet; answer how many."""
        with self._poll_lock:
            started = self._clock.now()
            since = self._polled_from - self._settings.lookback_seconds
            query = select(
                table.c.id, table.c.env, table.c.secret, table.c.cause
            ).where(
                table.c.env.in_(sorted(self._envs)), table.c.changed_at >= utc(since)
            )
            with self._engine.connect() as connection:
                rows = connection.execute(query).all()
            applied = sum(
                self._apply(row.id, row.env, row.secret, row.cause, "poll")
                for row in rows
            )
            self._polled_from = started
            self._forget_old(started)
        return applied

    def prune(self) -> int:
        """Delete the rows no poll reads back any more; answer how many."""
        settings = self._settings
        cutoff = self._clock.now() - (
            settings.lookback_seconds + settings.poll_seconds + PRUNE_SLACK_SECONDS
        )
        with self._engine.begin() as connection:
            return connection.execute(
                delete(table).where(table.c.changed_at < utc(cutoff))
            ).rowcount

    def _apply(self, change_id: str, env: str, name: str, cause: str, via: str) -> bool:
        with self._lock:
            if change_id in self._applied:
                return False
            self._applied[change_id] = self._clock.now()
        self._forget(env, name)
        log.info("secret_cache_dropped", env=env, secret=name, cause=cause, via=via)
        return True

    def _forget_old(self, now: float) -> None:
        """Drop the ids of changes the poll can no longer find."""
        settings = self._settings
        keep_from = now - 2 * (settings.lookback_seconds + settings.poll_seconds)
        with self._lock:
            for done in [i for i, at in self._applied.items() if at < keep_from]:
                del self._applied[done]
