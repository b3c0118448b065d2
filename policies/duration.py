"""Durations as policy documents write them: `90s`, `15m`, `24h`, `30d`, `1w`, `1h30m`.

Units come largest first, each at most once, lower case only (`M` could be read
as months). A bare number is refused: its unit would be a guess.
"""

from __future__ import annotations

import re
from typing import Final

UNITS: Final = (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))
MAX_SECONDS: Final = 3650 * 86_400

_DURATION: Final = re.compile(
    r"(?:(?P<w>[0-9]{1,9})w)?(?:(?P<d>[0-9]{1,9})d)?(?:(?P<h>[0-9]{1,9})h)?"
    r"(?:(?P<m>[0-9]{1,9})m)?(?:(?P<s>[0-9]{1,9})s)?"
)


def parse_duration(text: str) -> int:
    """The number of seconds `text` stands for.

    Raises ValueError when `text` is not a duration, is zero, or is over ten
    years. The message never repeats `text`.
    """
    match = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if match is None or not text:
        raise ValueError("expected a duration such as 15m, 24h or 30d")

    seconds = sum(
        int(match.group(unit)) * size
        for unit, size in UNITS
        if match.group(unit) is not None
    )
    if seconds <= 0:
        raise ValueError("a duration must be longer than zero")
    if seconds > MAX_SECONDS:
        raise ValueError("a duration must be at most 3650d")
    return seconds


def format_duration(seconds: int) -> str:
    """`seconds` written the way `parse_duration` reads it: 5400 is `1h30m`.

    Weeks are not used, so 30 days stays `30d`. Zero is `0s`; a negative
    number raises ValueError.
    """
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if seconds == 0:
        return "0s"

    parts = []
    for unit, size in UNITS[1:]:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
