"""Request rates as policy documents and settings write them: `100/s`, `600/m`.

A rate is a count per unit (`s`, `m` or `h`); it allows bursts of up to that
count and refills evenly, so `600/m` and `10/s` allow the same long-run rate
but different bursts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Final

from pydantic import PlainSerializer, PlainValidator

UNITS: Final = {"s": 1.0, "m": 60.0, "h": 3600.0}
MAX_COUNT: Final = 1_000_000
_RATE: Final = re.compile(r"([1-9][0-9]{0,6})\s*/\s*([smh])")


@dataclass(frozen=True, slots=True)
class Rate:
    """`count` requests per `per_seconds`, in bursts of up to `count`."""

    count: int
    per_seconds: float
    text: str

    @classmethod
    def parse(cls, text: str) -> Rate:
        """The rate `text` names. Raises ValueError, without repeating the text."""
        found = _RATE.fullmatch(text.strip()) if isinstance(text, str) else None
        if found is None or int(found.group(1)) > MAX_COUNT:
            raise ValueError(
                "expected a rate such as 100/s, 600/m or 1000/h "
                f"(at most {MAX_COUNT} per unit)"
            )
        count, unit = int(found.group(1)), found.group(2)
        return cls(count, UNITS[unit], f"{count}/{unit}")

    @property
    def per_second(self) -> float:
        return self.count / self.per_seconds

    def __str__(self) -> str:
        return self.text


def _rate(value: object) -> Rate:
    if isinstance(value, Rate):
        return value
    if not isinstance(value, str):
        raise ValueError("expected a rate such as 100/s")
    return Rate.parse(value)


RateField = Annotated[
    Rate, PlainValidator(_rate), PlainSerializer(str, return_type=str)
]
