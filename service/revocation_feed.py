"""Keeping every broker process's revocations in step with the store.

Two paths bring another process's revocation here:

- the push: on PostgreSQL a dedicated connection (psycopg 3, in its own thread)
  LISTENs on the channel that `RevocationStore.record` notifies in the
  revoking transaction; a revocation arrives within milliseconds of its
  commit;
- the poll: every `poll_seconds` (all databases) the rows recorded since the
  last poll, less `lookback_seconds` for commits that took a while and clocks
  a little apart, are read again. This is the fallback when a notification is
  lost or the listener is reconnecting, and the only path on SQLite.

Applying a revocation twice changes nothing, so the two paths may overlap.
Bound: a revocation is enforced by every process within `poll_seconds` plus
one query (0.5 s by default) even with no push at all; README.md states it.

The same thread runs the periodic chores that keep the process current:
pruning expired revocations and checking the signing-key schedule. The channel
carries other announcements too: `handlers` maps a message type to what acts
on it in this process (a compromise, a changed policy), and a chore of each
polls for what a lost notification missed, within the same bound.

TODO: a burst of many revocations (a bulk revocation of thousands of tokens)
is read again by every poll for `lookback_seconds`; reading only rows newer
than the last one seen, with the lookback re-read far less often, would cut
that cost. Safe meanwhile: re-applying a row changes nothing; it costs only
the reading.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import psycopg
import structlog
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from service.clock import Clock
from service.revocation_set import Revocation
from service.revocation_store import RevocationStore, from_message
from service.store.notify import CHANNEL

log = structlog.get_logger(__name__)

LISTEN_WAIT_SECONDS = 1.0
RECONNECT_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 10.0


class RevocationSettings(BaseModel):
    """The `revocation:` settings; every duration is in seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    poll_seconds: float = Field(default=0.5, gt=0, le=60)
    lookback_seconds: float = Field(default=10.0, ge=0, le=3600)
    prune_seconds: float = Field(default=60.0, gt=0)
    # LISTEN/NOTIFY on PostgreSQL; without it the poll alone propagates.
    listen: bool = True


@dataclass
class Chore:
    """Work the feed's thread does every `every` seconds."""

    name: str
    every: float
    run: Callable[[], object]
    next_at: float = 0.0


class RevocationFeed:
    """Brings revocations made by other processes into this one."""

    def __init__(
        self,
        store: RevocationStore,
        engine: Engine,
        settings: RevocationSettings,
        clock: Clock,
        *,
        envs: Collection[str],
        apply: Callable[[Revocation], object],
        keys_changed: Callable[[str], object],
    ) -> None:
        self.settings = settings
        self.chores: list[Chore] = []
        # Message type -> what acts on it; each runs in the listener's thread.
        self.handlers: dict[str, Callable[[dict[str, Any]], object]] = {}
        self._store = store
        self._clock = clock
        self._envs = frozenset(envs)
        self._apply = apply
        self._keys_changed = keys_changed
        self._listen_url = _listen_url(engine) if settings.listen else None
        self._polled_from = clock.now()
        self._poll_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def caught_up_at(self, moment: float) -> None:
        """The next poll reads what was recorded since `moment`."""
        self._polled_from = moment

    def poll(self) -> int:
        """Apply what was recorded since the last poll; answer how many rows."""
        with self._poll_lock:
            started = self._clock.now()
            since = self._polled_from - self.settings.lookback_seconds
            found = self._store.changed_since(self._envs, since)
            for revocation in found:
                self._apply(revocation)
            self._polled_from = started
        return len(found)

    def handle(self, payload: str) -> None:
        """Act on one announcement from another process."""
        try:
            message: dict[str, Any] = json.loads(payload)
            env = str(message["env"])
            if env not in self._envs:
                return
            kind = message["type"]
            if kind == "revocation":
                self._apply(from_message(message))
            elif kind == "keys":
                self._keys_changed(env)
            elif kind == "bulk":
                self.poll()
            elif kind in self.handlers:
                handler = self.handlers[kind]
                self._guarded(kind, lambda: handler(message))
        except (ValueError, KeyError, TypeError) as error:
            log.warning(
                "revocation_message_unreadable", error_type=type(error).__name__
            )

    def start(self) -> None:
        if self._threads:
            return
        self._stop.clear()
        targets = [("tokenbroker-revocation-poll", self._poll_loop)]
        if self._listen_url is not None:
            targets.append(("tokenbroker-revocation-listen", self._listen_loop))
        for name, target in targets:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=LISTEN_WAIT_SECONDS * 5)
        self._threads = []

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.settings.poll_seconds):
            self._guarded("poll", self.poll)
            now = time.monotonic()
            for chore in self.chores:
                if now >= chore.next_at:
                    chore.next_at = now + chore.every
                    self._guarded(chore.name, chore.run)

    def _listen_loop(self) -> None:
        assert self._listen_url is not None
        backoff = RECONNECT_SECONDS
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self._listen_url, autocommit=True, connect_timeout=5
                ) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    log.info("revocation_listener_connected")
                    backoff = RECONNECT_SECONDS
                    # Whatever was announced while no one listened.
                    self._guarded("poll", self.poll)
                    while not self._stop.is_set():
                        for notice in connection.notifies(timeout=LISTEN_WAIT_SECONDS):
                            self.handle(notice.payload)
            except psycopg.Error as error:
                log.warning("revocation_listener_lost", error_type=type(error).__name__)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_SECONDS)

    def _guarded(self, name: str, work: Callable[[], object]) -> None:
        try:
            work()
        except Exception as error:
            # A store that is down must not end the thread: the next round
            # tries again, and requests keep the revocations already known.
            log.warning(
                "revocation_chore_failed", chore=name, error_type=type(error).__name__
            )


def _listen_url(engine: Engine) -> str | None:
    if engine.dialect.name != "postgresql":
        return None
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
