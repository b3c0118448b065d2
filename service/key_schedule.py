"""When a signing key signs, when it is published, and when its successor is due.

A key's life, in the order a verifier sees it (cases C10 and C12):

1. Created and published in the JWKS at once, but not signing yet: verifiers
   that refresh their key set see it `overlap_seconds` before its first token.
2. Signing from `activates_at`, until a newer key activates.
3. Still published after it stopped signing, until `not_after`: no token
   outlives its key (its `exp` is clamped to the key's `not_after`), so every
   token it signed is expired by then.

A successor is created once the signing key has less than `renew_before_seconds
+ overlap_seconds` left, and activates while `renew_before_seconds` remain, so
that tokens signed just before the switch still get their whole lifetime. A
rotation that comes late (the broker was down) activates sooner rather than let
the old key run out; with no key able to sign at all, the new key signs at once.

Everything here is a function of the keys and the time, which tests choose.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

DAY = 86400.0
# A successor activates at least this long after the key it follows, so that
# "the newest active key" is never a tie.
SUCCESSION_GAP_SECONDS = 0.001


class SigningKeySettings(BaseModel):
    """The `signing_keys:` settings; every duration is in seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lifetime_seconds: float = Field(default=90 * DAY, ge=60)
    overlap_seconds: float = Field(default=3600.0, ge=0)
    renew_before_seconds: float = Field(default=7 * DAY, ge=0)
    # How often each process reloads its keys and checks the schedule.
    check_seconds: float = Field(default=10.0, gt=0, le=3600)
    # After a failed attempt to create a key, the next one waits this long.
    retry_seconds: float = Field(default=30.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _leaves_time_to_sign(self) -> SigningKeySettings:
        if self.lifetime_seconds <= self.renew_before_seconds + self.overlap_seconds:
            raise ValueError(
                "lifetime_seconds must be longer than renew_before_seconds plus "
                "overlap_seconds"
            )
        return self


class Window(Protocol):
    """What the schedule needs of a key."""

    @property
    def kid(self) -> str: ...

    @property
    def activates(self) -> float: ...

    @property
    def ends(self) -> float: ...

    @property
    def can_sign(self) -> bool: ...


K = TypeVar("K", bound=Window)


def signer(keys: Iterable[K], now: float) -> K | None:
    """The key that signs at `now`: the newest one active and not ended.

    Every process holding the same keys picks the same one.
    """
    active = [key for key in keys if key.can_sign and key.activates <= now < key.ends]
    return max(active, key=lambda key: (key.activates, key.kid), default=None)


def pending(keys: Iterable[Window], now: float) -> bool:
    """Whether a published key is waiting to sign."""
    return any(key.can_sign and key.activates > now for key in keys)


def successor_due(
    keys: Iterable[Window], now: float, settings: SigningKeySettings
) -> bool:
    """Whether a new key should be created now."""
    keys = list(keys)
    if pending(keys, now):
        return False
    current = signer(keys, now)
    if current is None:
        return True
    left = current.ends - now
    return left < settings.renew_before_seconds + settings.overlap_seconds


def successor_window(
    keys: Iterable[Window],
    now: float,
    settings: SigningKeySettings,
    *,
    overlap: float | None = None,
) -> tuple[float, float]:
    """`(activates_at, not_after)` for a key created now.

    An explicit `overlap` (an operator's rotation) is taken as given, only
    never past the end of the current key, which would leave a gap.
    """
    current = signer(keys, now)
    if current is None:
        return now, now + settings.lifetime_seconds
    if overlap is not None:
        activates = min(now + overlap, current.ends)
    else:
        latest = current.ends - settings.renew_before_seconds
        activates = max(now, min(now + settings.overlap_seconds, latest))
    activates = max(activates, current.activates + SUCCESSION_GAP_SECONDS)
    return activates, activates + settings.lifetime_seconds


def next_change(
    keys: Iterable[Window], now: float, settings: SigningKeySettings
) -> float:
    """The next time `signer` or `successor_due` can answer differently."""
    keys = list(keys)
    moments = [key.activates for key in keys if key.can_sign and key.activates > now]
    current = signer(keys, now)
    if current is not None:
        moments.append(current.ends)
        if not pending(keys, now):
            moments.append(
                current.ends - settings.renew_before_seconds - settings.overlap_seconds
            )
    return min((moment for moment in moments if moment > now), default=math.inf)
