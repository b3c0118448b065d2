"""When a secret is due: `every: DURATION` or `cron: EXPR`, always in UTC.

A schedule yields nominal slots. Slots of `every` lie on a grid anchored at the
first slot, so a late run does not shift later ones; slots of `cron` come from
croniter in UTC, so daylight-saving changes cannot repeat or skip a fire time.

Jitter spreads secrets that share a schedule: each slot is due a few seconds
after its nominal time, by an offset derived from the secret's name and the
slot, so every broker process computes the same due time without talking.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from croniter import croniter

from policies.model import Rotation


class Lateness(StrEnum):
    """How a due slot relates to the time a run would start."""

    ON_TIME = "on_time"
    LATE = "late"
    MISSED = "missed"


@dataclass(frozen=True, slots=True)
class Schedule:
    """The slots of one secret's rotation; build it with `Schedule.of`."""

    spec: str
    period: int | None
    cron: str | None
    jitter: int
    window: int | None

    @classmethod
    def of(cls, rotation: Rotation) -> Schedule:
        """The schedule a `rotation:` block declares."""
        if rotation.every is not None:
            spec = f"every:{rotation.every}"
        else:
            spec = f"cron:{rotation.cron}"
        if rotation.cron is not None and not croniter.is_valid(rotation.cron):
            raise ValueError("the cron expression has a field out of range")
        return cls(
            spec=spec,
            period=rotation.every,
            cron=rotation.cron,
            jitter=rotation.jitter or 0,
            window=rotation.window,
        )

    def first_slot(self, now: float) -> float:
        """The first slot of a schedule seen for the first time at `now`."""
        if self.period is not None:
            return now + self.period
        return self._cron_after(now)

    def next_slot(self, previous: float, now: float) -> float:
        """The first slot after `now` on the grid of `previous`.

        Slots missed between `previous` and `now` are skipped, never replayed:
        whoever calls this has run (or reported) the one catch-up run already.
        The result is always later than both `previous` and `now`.
        """
        if self.period is not None:
            periods = max(1, math.floor((now - previous) / self.period) + 1)
            return previous + periods * self.period
        return self._cron_after(max(previous, now))

    def due_at(self, env: str, secret: str, slot: float) -> float:
        """When `slot` is due for this secret: the slot plus its jitter offset."""
        return slot + self.offset(env, secret, slot)

    def offset(self, env: str, secret: str, slot: float) -> int:
        """A jitter offset in `[0, jitter]`, the same in every process."""
        if self.jitter <= 0:
            return 0
        seed = f"{env}\x00{secret}\x00{int(slot)}".encode()
        number = int.from_bytes(hashlib.sha256(seed).digest()[:8], "big")
        return number % (self.jitter + 1)

    def lateness(
        self, slot: float, due: float, now: float, *, late_after: float, catch_up: float
    ) -> Lateness:
        """Whether a run starting at `now` for `slot` is on time, late or missed.

        A run may start up to the secret's `window` after its slot, or the
        broker-wide catch-up allowance when the secret declares no window.
        """
        allowed = self.window if self.window is not None else catch_up
        if now - slot > max(allowed, due - slot):
            return Lateness.MISSED
        if now - due > late_after:
            return Lateness.LATE
        return Lateness.ON_TIME

    def _cron_after(self, moment: float) -> float:
        assert self.cron is not None
        start = datetime.fromtimestamp(moment, tz=UTC)
        fire: datetime = croniter(self.cron, start).get_next(datetime)
        return fire.timestamp()
