"""Schedules: cron in UTC across daylight-saving changes, grids, jitter, lateness."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from policies.model import Rotation
from service.rotation.schedule import Lateness, Schedule

DAY = 86_400.0


def schedule(**options: object) -> Schedule:
    rotation = Rotation.model_validate(
        {"generator": {"type": "random"}, "grace": "1h", **options}
    )
    return Schedule.of(rotation)


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize("cron", ["30 2 * * *", "0 1 * * 0", "*/30 1-3 * * *"])
def test_cron_fire_times_strictly_increase_across_daylight_saving_changes(
    cron: str,
) -> None:
    plan = schedule(cron=cron)
    fires = [plan.first_slot(at("2026-03-01 00:00"))]
    while fires[-1] < at("2026-11-30 00:00"):
        fires.append(plan.next_slot(fires[-1], fires[-1]))

    assert all(later > earlier for earlier, later in itertools.pairwise(fires))


def test_cron_fires_at_the_same_utc_hour_on_both_sides_of_a_dst_change() -> None:
    plan = schedule(cron="30 2 * * *")

    before = plan.first_slot(at("2026-03-28 12:00"))
    after = plan.next_slot(before, before)

    assert datetime.fromtimestamp(after, tz=UTC).hour == 2
    assert after - before == DAY


def test_every_slots_stay_on_their_grid_after_a_late_run() -> None:
    plan = schedule(every="1h")

    following = plan.next_slot(at("2026-03-02 10:00"), at("2026-03-02 10:40"))

    assert following == at("2026-03-02 11:00")


def test_missed_slots_are_skipped_to_the_first_one_after_now() -> None:
    plan = schedule(cron="0 * * * *")

    following = plan.next_slot(at("2026-03-02 10:00"), at("2026-03-02 13:20"))

    assert following == at("2026-03-02 14:00")


def test_a_run_soon_after_its_slot_is_on_time() -> None:
    plan = schedule(every="1h")
    slot = at("2026-03-02 10:00")

    lateness = plan.lateness(slot, slot, slot + 30, late_after=60, catch_up=DAY)

    assert lateness is Lateness.ON_TIME


def test_a_run_after_downtime_within_catch_up_is_late() -> None:
    plan = schedule(every="1h")
    slot = at("2026-03-02 10:00")

    lateness = plan.lateness(slot, slot, slot + 2400, late_after=60, catch_up=DAY)

    assert lateness is Lateness.LATE


def test_a_run_past_the_secrets_own_window_is_missed() -> None:
    plan = schedule(every="7d", window="2h")
    slot = at("2026-03-02 03:00")

    lateness = plan.lateness(slot, slot, slot + 7201, late_after=60, catch_up=DAY)

    assert lateness is Lateness.MISSED


def test_jitter_offset_is_the_same_in_every_process_and_within_bounds() -> None:
    plan = schedule(every="1h", jitter="5m")
    slot = at("2026-03-02 10:00")

    offsets = {plan.offset("prod", f"s{n}", slot) for n in range(200)}

    assert plan.offset("prod", "s1", slot) == plan.offset("prod", "s1", slot)
    assert min(offsets) >= 0 and max(offsets) <= 300
    assert len(offsets) > 50


def test_a_cron_field_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="out of range"):
        schedule(cron="61 * * * *")
