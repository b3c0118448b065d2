"""The signing-key schedule: which key signs, and when a successor is due."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from service import key_schedule
from service.key_schedule import SigningKeySettings

DAY = 86400.0
SETTINGS = SigningKeySettings(
    lifetime_seconds=90 * DAY, overlap_seconds=3600, renew_before_seconds=7 * DAY
)


@dataclass(frozen=True)
class Key:
    kid: str
    activates: float
    ends: float
    can_sign: bool = True


def test_newest_active_key_signs() -> None:
    old, new = Key("old", 0, 90 * DAY), Key("new", 80 * DAY, 170 * DAY)

    assert key_schedule.signer([old, new], 79 * DAY) is old
    assert key_schedule.signer([old, new], 80 * DAY) is new


def test_key_waiting_for_its_overlap_does_not_sign() -> None:
    current, waiting = Key("current", 0, 90 * DAY), Key("waiting", 10 * DAY, 100 * DAY)

    assert key_schedule.signer([current, waiting], 5 * DAY) is current
    assert key_schedule.pending([current, waiting], 5 * DAY)


def test_successor_is_due_once_less_than_renew_plus_overlap_is_left() -> None:
    current = Key("current", 0, 90 * DAY)
    due_at = 90 * DAY - 7 * DAY - 3600

    assert not key_schedule.successor_due([current], due_at - 1, SETTINGS)
    assert key_schedule.successor_due([current], due_at + 1, SETTINGS)


def test_no_second_successor_while_one_waits() -> None:
    current, waiting = Key("current", 0, 90 * DAY), Key("waiting", 84 * DAY, 174 * DAY)

    assert not key_schedule.successor_due([current, waiting], 83 * DAY, SETTINGS)


def test_successor_on_time_signs_after_the_whole_overlap() -> None:
    current = Key("current", 0, 90 * DAY)
    now = 82 * DAY

    activates, not_after = key_schedule.successor_window([current], now, SETTINGS)

    assert activates == now + 3600
    assert not_after == activates + 90 * DAY


def test_late_successor_signs_at_once_rather_than_clamp_tokens() -> None:
    current = Key("current", 0, 90 * DAY)
    now = 89 * DAY

    activates, _ = key_schedule.successor_window([current], now, SETTINGS)

    assert activates == now


def test_first_key_signs_at_once() -> None:
    activates, _ = key_schedule.successor_window([], 100.0, SETTINGS)

    assert activates == 100.0


def test_operator_overlap_never_leaves_a_gap_after_the_current_key() -> None:
    current = Key("current", 0, 90 * DAY)

    activates, _ = key_schedule.successor_window(
        [current], 89 * DAY, SETTINGS, overlap=5 * DAY
    )

    assert activates == 90 * DAY


def test_next_change_is_the_waiting_keys_activation() -> None:
    current, waiting = Key("current", 0, 90 * DAY), Key("waiting", 84 * DAY, 174 * DAY)

    assert key_schedule.next_change([current, waiting], 83 * DAY, SETTINGS) == 84 * DAY


def test_next_change_without_a_successor_is_when_one_becomes_due() -> None:
    current = Key("current", 0, 90 * DAY)

    assert key_schedule.next_change([current], DAY, SETTINGS) == 83 * DAY - 3600


def test_settings_refuse_a_lifetime_shorter_than_renew_plus_overlap() -> None:
    with pytest.raises(ValueError, match="lifetime_seconds"):
        SigningKeySettings(
            lifetime_seconds=DAY, renew_before_seconds=DAY, overlap_seconds=0
        )
