"""Prometheus metrics of rotation."""

from __future__ import annotations

from prometheus_client import generate_latest

from tests.rotation.conftest import Rig


def scrape(rig: Rig) -> str:
    return generate_latest(rig.registry).decode()


def test_rotations_are_counted_by_outcome(rig: Rig) -> None:
    rig.put("app/db", "<PW1>")

    rig.rotate()

    assert 'tokenbroker_rotations_total{env="dev",outcome="succeeded"} 1.0' in scrape(
        rig
    )


def test_age_of_the_current_version_grows_with_the_clock(rig: Rig) -> None:
    rig.put("app/db", "<PW1>")
    rig.rotate()

    rig.clock.advance(90)

    assert (
        'tokenbroker_secret_current_version_age_seconds{env="dev",secret="app/db"} 90.0'
        in scrape(rig)
    )


def test_failures_in_a_row_are_reported_until_a_success(rig: Rig) -> None:
    rig.put("app/db", "<PW1>")
    rig.target.fail_apply = 2
    rotation = rig.rotate()
    rig.clock.advance(10)
    rig.run(rotation.id)

    failing = scrape(rig)
    rig.clock.advance(20)
    rig.run(rotation.id)

    name = 'tokenbroker_rotation_failures_in_row{env="dev",secret="app/db"}'
    assert f"{name} 2.0" in failing
    assert f"{name} 0.0" in scrape(rig)


def test_next_scheduled_run_is_reported(rig: Rig) -> None:
    rig.service.worker.tick()

    assert (
        'tokenbroker_rotation_next_run_timestamp_seconds{env="dev",secret="app/key"}'
        in scrape(rig)
    )
