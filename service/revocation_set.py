"""One environment's revocations in memory: the check every request pays for.

`revoked(principal)` runs on every verified request, cache hit or not, and
costs three hash lookups whatever the number of revoked tokens: the token's
`jti` in a set, its `kid` in a set, and its service's watermark (every token of
the service issued at or before the watermark second is revoked; a disabled
service's watermark is infinite).

Revoked tokens are also filed by the minute they expire, so that `prune` drops
what no longer matters in time proportional to what it drops, never by
scanning the whole set. Writers (the feed thread, a revoking request) take a
lock; the check takes none, since each lookup reads one consistent dict or set.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.tokens import Principal

BUCKET_SECONDS = 60


class Kind(StrEnum):
    """What a revocation names."""

    TOKEN = "token"  # noqa: S105 (a kind, not a secret)
    SERVICE = "service"
    KEY = "key"


@dataclass(frozen=True, slots=True)
class Revocation:
    """One revocation as stored and as sent to other processes.

    For a service, `revoked_at` is the watermark, and `disabled` refuses every
    token, new ones included. `revision` orders the changes of one service.
    """

    env: str
    kind: Kind
    subject: str
    revoked_at: float
    expires_at: float
    disabled: bool = False
    revision: int = 1


class RevocationSet:
    """What is revoked in one environment, for O(1) checks."""

    def __init__(self, env: str) -> None:
        self.env = env
        # Called with a kid once it is revoked, so the key ring drops it.
        self.on_key_revoked: Callable[[str], None] | None = None
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}
        self._expiring: defaultdict[int, list[str]] = defaultdict(list)
        self._watermarks: dict[str, float] = {}
        self._services: dict[str, Revocation] = {}
        self._keys: dict[str, float] = {}

    def revoked(self, principal: Principal) -> Kind | None:
        """What revoked this token, or None while it stands."""
        if principal.jti in self._tokens:
            return Kind.TOKEN
        if principal.kid in self._keys:
            return Kind.KEY
        mark = self._watermarks.get(principal.service)
        if mark is not None and principal.issued_at <= mark:
            return Kind.SERVICE
        return None

    def disabled(self, service: str) -> bool:
        """Whether the service may get no new token."""
        return self._watermarks.get(service) == math.inf

    def key_revoked(self, kid: str) -> bool:
        return kid in self._keys

    def issuable_from(self, service: str) -> float:
        """The first time a new token of `service` would not be born revoked.

        Tokens carry whole seconds, so one issued in the same second as a
        service-wide revocation cannot be told from one issued just before it:
        the watermark covers that whole second, and a new token waits for the
        next one. Infinite for a disabled service; 0 without a watermark.
        """
        mark = self._watermarks.get(service)
        return 0.0 if mark is None else mark + 1

    def apply(self, revocation: Revocation) -> bool:
        """Take a revocation in; answer whether it changed anything."""
        with self._lock:
            if revocation.kind is Kind.TOKEN:
                changed = self._add_token(revocation)
            elif revocation.kind is Kind.SERVICE:
                changed = self._set_service(revocation)
            else:
                changed = revocation.subject not in self._keys
                self._keys[revocation.subject] = revocation.expires_at
        if changed and revocation.kind is Kind.KEY and self.on_key_revoked:
            self.on_key_revoked(revocation.subject)
        return changed

    def prune(self, now: float) -> int:
        """Forget revocations whose tokens have all expired; answer how many."""
        dropped = 0
        with self._lock:
            for bucket in [b for b in self._expiring if b * BUCKET_SECONDS <= now]:
                for jti in self._expiring.pop(bucket):
                    expires = self._tokens.get(jti)
                    if expires is not None and expires <= now:
                        del self._tokens[jti]
                        dropped += 1
            for name, entry in list(self._services.items()):
                if not entry.disabled and entry.expires_at <= now:
                    del self._services[name]
                    del self._watermarks[name]
                    dropped += 1
            for kid, expires in list(self._keys.items()):
                if expires <= now:
                    del self._keys[kid]
                    dropped += 1
        return dropped

    def counts(self) -> dict[str, int]:
        """How many revocations of each kind are held."""
        return {
            Kind.TOKEN.value: len(self._tokens),
            Kind.SERVICE.value: len(self._services),
            Kind.KEY.value: len(self._keys),
        }

    def _add_token(self, revocation: Revocation) -> bool:
        known = self._tokens.get(revocation.subject)
        if known is not None and known >= revocation.expires_at:
            return False
        self._tokens[revocation.subject] = revocation.expires_at
        # The bucket after the one the expiry falls in: pruned once it is past.
        bucket = math.floor(revocation.expires_at / BUCKET_SECONDS) + 1
        self._expiring[bucket].append(revocation.subject)
        return known is None

    def _set_service(self, revocation: Revocation) -> bool:
        known = self._services.get(revocation.subject)
        if known is not None and known.revision >= revocation.revision:
            return False
        self._services[revocation.subject] = revocation
        self._watermarks[revocation.subject] = (
            math.inf if revocation.disabled else math.floor(revocation.revoked_at)
        )
        return True
