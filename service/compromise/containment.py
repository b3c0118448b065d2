"""What every broker process does once a compromise is announced.

The process that takes a compromise answers it, but part of what must be undone
lives only in the others: their read caches, which may hold the compromised
version, and the reads they have not flushed yet, whose tokens only they know.
So every process, the responding one included, on the announcement (pushed on
the revocation feed's channel, or found by its poll):

1. watches the compromised version: until the last token that can have read it
   expires, token reads of it flushed later are swept too (a read that was in
   flight when the version was disabled, and is flushed afterwards);
2. drops the secret's cached versions;
3. flushes its read aggregate and token reads to the store;
4. sweeps: revokes every live token that read the version and is not in the
   report yet, by jti (a service whose tokens were not listed, by watermark),
   and adds them to the report; one process at a time (Exposure.exclusive);
5. copies the reads the compromise concerns into the report.

A service compromise needs only 3 and 5: its tokens fall to the service's
watermark, which the feed carries as any revocation.

Bound: the announcement arrives within the feed's bound (milliseconds pushed,
`revocation.poll_seconds` polled), and the tokens swept here reach the other
processes within that bound again. A straggling read is swept within one
`rotation.consumer_flush_seconds` and one poll.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import structlog

from service.clock import Clock
from service.compromise.exposure import SERVICE, TOKEN, Exposure, Revoked
from service.compromise.records import (
    MESSAGE_TYPE,
    Compromise,
    CompromiseStore,
    Kind,
)
from service.revocation_feed import Chore, RevocationFeed, RevocationSettings
from service.revocations import Revocations
from service.rotation.consumers import ConsumerTracker
from service.rotation.token_reads import UNLISTED, Version
from service.secret_access import SecretAccess

log = structlog.get_logger(__name__)

# The actor of what a process does on another's announcement.
ACTOR = "compromise"


@dataclass(frozen=True, slots=True)
class Context:
    """Who the sweep acts for, in the audit log."""

    actor: str = ACTOR
    request_id: str | None = None
    source: str | None = None


@dataclass(slots=True)
class _Watch:
    compromise: Compromise
    until: float


class Containment:
    """One process's share of every compromise response."""

    def __init__(
        self,
        store: CompromiseStore,
        exposure: Exposure,
        consumers: ConsumerTracker,
        revocations: Revocations,
        secrets: SecretAccess,
        clock: Clock,
        settings: RevocationSettings,
        *,
        envs: Collection[str],
    ) -> None:
        self.store = store
        self.exposure = exposure
        self._consumers = consumers
        self._revocations = revocations
        self._secrets = secrets
        self._clock = clock
        self._settings = settings
        self._envs = frozenset(envs)
        self._lock = threading.Lock()
        self._handled: dict[str, float] = {}
        self._watched: dict[Version, _Watch] = {}
        self._dirty: set[Version] = set()
        self._polled_from = clock.now()

    def attach(self, feed: RevocationFeed) -> None:
        """Act on the feed's announcements, poll on its thread, watch flushes."""
        feed.handlers[MESSAGE_TYPE] = self.handle
        feed.chores.append(Chore("compromise", self._settings.poll_seconds, self.poll))
        self._consumers.on_flushed.append(self.flushed)

    def handle(self, message: dict[str, Any]) -> None:
        """An announcement from another process (or this one's own, again)."""
        env, compromise_id = str(message["env"]), str(message["id"])
        if env not in self._envs or compromise_id in self._handled:
            return
        found = self.store.get(env, compromise_id)
        if found is not None:
            self.contain(found)

    def poll(self) -> int:
        """Contain what was announced since the last look and sweep what was
        flushed for a watched version; answer how many compromises acted on."""
        started = self._clock.now()
        since = self._polled_from - self._settings.lookback_seconds
        acted = 0
        for found in self.store.announced_since(self._envs, since):
            if found.id not in self._handled:
                self.contain(found)
                acted += 1
        self._polled_from = started
        for watch in self._take_dirty():
            self.sweep(watch.compromise)
            acted += 1
        self._forget_old(started)
        return acted

    def flushed(self, versions: set[Version]) -> None:
        """Token reads of these versions were just flushed (O(1) each)."""
        with self._lock:
            self._dirty.update(v for v in versions if v in self._watched)

    def claim(self, compromise_id: str) -> None:
        """This process answers the compromise itself: its own announcement,
        when it comes back, changes nothing."""
        with self._lock:
            self._handled[compromise_id] = self._clock.now()

    def contain(self, compromise: Compromise, context: Context | None = None) -> None:
        """This process's share of a response (see the module docstring).

        Raises what the store raises; the poll then tries again.
        """
        self.claim(compromise.id)
        try:
            self._contain(compromise, context)
        except Exception:
            with self._lock:
                self._handled.pop(compromise.id, None)
            raise

    def _contain(self, compromise: Compromise, context: Context | None) -> None:
        if compromise.kind is Kind.SECRET:
            assert compromise.version is not None
            key = (compromise.env, compromise.subject, compromise.version)
            until = self._revocations.last_token_end(compromise.env)
            with self._lock:
                self._watched[key] = _Watch(compromise, until)
            self._secrets.forget(compromise.env, compromise.subject)
        self._consumers.flush()
        if compromise.kind is Kind.SECRET:
            self.sweep(compromise, context)
        copied = self.exposure.refresh_reads(compromise)
        log.info(
            "compromise_contained",
            env=compromise.env,
            compromise_id=compromise.id,
            kind=compromise.kind.value,
            subject=compromise.subject,
            version=compromise.version,
            reads=copied,
        )

    def sweep(self, compromise: Compromise, context: Context | None = None) -> int:
        """Revoke the live tokens that read the compromised version and are not
        in the report yet, then add them to it; answer how many."""
        acting = context or Context()
        reason = f"compromise {compromise.id}"
        with self.exposure.exclusive(compromise.id):
            readers = self.exposure.new_readers(compromise)
            listed = [r for r in readers if r.jti != UNLISTED]
            now = self._clock.now()
            self._revocations.revoke_jtis(
                compromise.env,
                [(reader.jti, reader.expires_at) for reader in listed],
                reason=reason,
                actor=acting.actor,
                request_id=acting.request_id,
                source=acting.source,
            )
            revoked = [Revoked(TOKEN, r.jti, r.service, r.expires_at, now)
                       for r in listed]  # fmt: skip
            for reader in readers:
                if reader.jti != UNLISTED:
                    continue
                # Tokens it could not list: every token of the service goes.
                mark = self._revocations.revoke_service(
                    compromise.env, reader.service, reason=reason,
                    actor=acting.actor, request_id=acting.request_id,
                    source=acting.source,
                )  # fmt: skip
                revoked.append(Revoked(SERVICE, reader.service, reader.service,
                                       reader.expires_at, mark.revoked_at))  # fmt: skip
            self.exposure.add(compromise.id, revoked)
        if revoked:
            log.info(
                "compromise_tokens_revoked",
                env=compromise.env,
                compromise_id=compromise.id,
                tokens=len(listed),
                services=len(revoked) - len(listed),
            )
        return len(revoked)

    def _take_dirty(self) -> list[_Watch]:
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            return [self._watched[key] for key in dirty if key in self._watched]

    def _forget_old(self, now: float) -> None:
        """Drop watches whose tokens have all expired, and handled ids the
        poll can no longer find."""
        keep_from = now - 2 * (self._settings.lookback_seconds
                               + self._settings.poll_seconds)  # fmt: skip
        with self._lock:
            for key in [k for k, w in self._watched.items() if w.until <= now]:
                del self._watched[key]
            for done in [i for i, at in self._handled.items() if at < keep_from]:
                del self._handled[done]
