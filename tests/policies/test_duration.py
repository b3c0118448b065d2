"""Durations as policy documents write them."""

from __future__ import annotations

import pytest

from policies.duration import format_duration, parse_duration

CANARY = "CANARY-7f3a"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("24h", 86_400),
        ("30d", 2_592_000),
        ("1w", 604_800),
        ("1h30m", 5_400),
        ("1d12h", 129_600),
        ("1w2d3h4m5s", 788_645),
    ],
    ids=lambda value: str(value),
)
def test_parse_duration_reads_each_unit_and_combinations(
    text: str, seconds: int
) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "",
        "15",
        "0s",
        "0h0m",
        "-5m",
        "15M",
        "1.5h",
        "30m1h",
        "1h1h",
        "1h 30m",
        " 15m",
        "15m\n",
        "1y",
        "\u0663m",
        "9999w",
    ],
    ids=[
        "empty",
        "bare-number",
        "zero",
        "zero-combined",
        "negative",
        "upper-case-unit",
        "fraction",
        "units-out-of-order",
        "unit-repeated",
        "inner-space",
        "leading-space",
        "trailing-newline",
        "unknown-unit",
        "non-ascii-digit",
        "over-ten-years",
    ],
)
def test_parse_duration_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_parse_duration_error_does_not_repeat_the_text() -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(CANARY)

    assert CANARY not in str(caught.value)
    assert "expected a duration" in str(caught.value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (90, "1m30s"), (900, "15m"), (5_400, "1h30m"), (2_592_000, "30d")],
    ids=["zero", "minutes-and-seconds", "minutes", "hours-and-minutes", "days"],
)
def test_format_duration_writes_largest_units_first(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [1, 59, 61, 3_601, 604_800, 788_645])
def test_format_duration_round_trips_through_parse(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


def test_format_duration_refuses_a_negative_number() -> None:
    with pytest.raises(ValueError):
        format_duration(-1)
