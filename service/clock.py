"""Time as a parameter: code that decides on expiry or schedules takes a `Clock`."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Tells the current time; tests pass one they can move."""

    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class SystemClock:
    """The machine's wall clock."""

    def now(self) -> float:
        return time.time()


def utc(timestamp: float) -> datetime:
    """A timezone-aware UTC datetime for an epoch timestamp."""
    return datetime.fromtimestamp(timestamp, tz=UTC)
