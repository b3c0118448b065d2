"""Schedules become rotations: on time, late once after downtime (C23), and
exactly once among several processes on one PostgreSQL store."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, create_engine, func, select

from service.crypto import KeyEncryptionKey
from service.rotation.settings import RotationSettings
from service.store.rotation_tables import rotations
from tests.rotation.conftest import FAST, Rig, build_environment
from tests.rotation.fakes import FakeTarget
from tests.service.conftest import FakeClock

WEEKLY = """\
secrets:
  app/weekly:
    rotation: {cron: "0 3 * * 1", generator: {type: random}, grace: 1h}
"""
HOURLY = """\
secrets:
  app/hourly:
    rotation: {cron: "0 * * * *", generator: {type: random}, grace: 1h}
"""
MANY = "secrets:\n" + "".join(
    f"  app/s{n}:\n    rotation: {{every: 1h, generator: {{type: random}}, "
    "grace: 1h, jitter: 30s}\n"
    for n in range(12)
)

RigMaker = Callable[[str], Rig]


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.fixture
def make_rig(engine: Engine, clock: FakeClock, kek: KeyEncryptionKey) -> RigMaker:
    def make(policy: str) -> Rig:
        environment = build_environment(engine, clock, kek, policy)
        return Rig(engine, clock, FakeTarget(clock), environment,
                   RotationSettings(**FAST))  # fmt: skip

    return make


def opened(rig: Rig, secret: str) -> int:
    with rig.engine.connect() as connection:
        return int(connection.execute(
            select(func.count()).select_from(rotations)
            .where(rotations.c.secret == secret)
        ).scalar_one())  # fmt: skip


def test_a_due_schedule_opens_and_runs_one_rotation(make_rig: RigMaker) -> None:
    rig = make_rig(HOURLY)
    rig.clock.current = at("2026-03-02 10:30")
    rig.put("app/hourly", "<PW1>")
    rig.service.worker.tick()

    rig.clock.current = at("2026-03-02 11:00")
    rig.service.worker.tick()

    assert opened(rig, "app/hourly") == 1
    assert rig.value("app/hourly") != "<PW1>"


def test_nothing_opens_before_the_slot(make_rig: RigMaker) -> None:
    rig = make_rig(HOURLY)
    rig.clock.current = at("2026-03-02 10:30")
    rig.service.worker.tick()

    rig.clock.current = at("2026-03-02 10:59:59")
    rig.service.worker.tick()

    assert opened(rig, "app/hourly") == 0


def down_across_the_weekly_slot(rig: Rig) -> None:
    rig.clock.current = at("2026-03-29 12:00")
    rig.put("app/weekly", "<PW1>")
    rig.service.worker.tick()
    rig.clock.current = at("2026-03-30 02:50")
    rig.service.worker.tick()
    rig.clock.current = at("2026-03-30 03:40")  # restarted after downtime
    rig.service.worker.tick()


def test_c23a_missed_weekly_run_runs_once_on_restart(make_rig: RigMaker) -> None:
    rig = make_rig(WEEKLY)

    down_across_the_weekly_slot(rig)

    [rotation] = rig.service.store.history("dev", "app/weekly")
    assert rotation.late
    assert rig.value("app/weekly") != "<PW1>"


def test_c23a_late_run_is_reported_as_late(make_rig: RigMaker) -> None:
    rig = make_rig(WEEKLY)

    down_across_the_weekly_slot(rig)

    assert "late" in rig.event_types()


def test_c23a_next_run_stays_on_the_schedule_not_restart_plus_a_week(
    make_rig: RigMaker,
) -> None:
    rig = make_rig(WEEKLY)

    down_across_the_weekly_slot(rig)

    row = rig.service.store.schedules("dev")["app/weekly"]
    assert row.slot_at == datetime(2026, 4, 6, 3, 0, tzinfo=UTC)


def test_c23b_three_missed_hourly_runs_coalesce_into_one(make_rig: RigMaker) -> None:
    rig = make_rig(HOURLY)
    rig.clock.current = at("2026-03-02 09:30")
    rig.service.worker.tick()

    rig.clock.current = at("2026-03-02 12:20")
    rig.service.worker.tick()
    rig.service.worker.tick()

    assert opened(rig, "app/hourly") == 1
    row = rig.service.store.schedules("dev")["app/hourly"]
    assert row.slot_at == datetime(2026, 3, 2, 13, 0, tzinfo=UTC)


def test_a_slot_older_than_the_catch_up_window_is_reported_missed(
    make_rig: RigMaker,
) -> None:
    rig = make_rig(WEEKLY)
    rig.clock.current = at("2026-03-29 12:00")
    rig.service.worker.tick()

    rig.clock.current = at("2026-04-01 12:00")
    rig.service.worker.tick()

    assert opened(rig, "app/weekly") == 0
    assert "missed" in rig.event_types()


def test_removing_the_schedule_from_the_policy_stops_it(make_rig: RigMaker) -> None:
    rig = make_rig(HOURLY)
    rig.clock.current = at("2026-03-02 10:30")
    rig.service.worker.tick()
    rig.environment.use_policy(
        build_environment(rig.engine, rig.clock, KeyEncryptionKey.generate(),
                          "services: {}\n").policy, 2
    )  # fmt: skip

    rig.clock.current = at("2026-03-02 11:30")
    rig.service.worker.tick()

    assert opened(rig, "app/hourly") == 0


# Several processes share a store on PostgreSQL only.
@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_three_processes_on_one_postgres_store_run_each_due_rotation_once(
    engine: Engine, clock: FakeClock, kek: KeyEncryptionKey
) -> None:
    url = engine.url.render_as_string(hide_password=False)
    engines = [engine, create_engine(url), create_engine(url)]
    rigs = [
        Rig(own, clock, FakeTarget(clock), build_environment(own, clock, kek, MANY),
            RotationSettings(**FAST))
        for own in engines
    ]  # fmt: skip
    clock.current = at("2026-03-02 10:30")
    for n in range(12):
        rigs[0].put(f"app/s{n}", "<PW1>")
    rigs[0].service.worker.tick()
    clock.current = at("2026-03-02 11:31")

    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def work(rig: Rig) -> None:
        try:
            start.wait()
            for _ in range(3):
                rig.service.worker.tick()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(rig,)) for rig in rigs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for own in engines[1:]:
        own.dispose()

    assert errors == []
    for n in range(12):
        assert opened(rigs[0], f"app/s{n}") == 1
        assert len(rigs[0].backend.versions(f"app/s{n}")) == 2
