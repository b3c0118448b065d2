"""Every step of a rotation, and every retirement, is in the audit chain.

The audit store fails for real: its table renamed away, or a trigger that
refuses every record but a step's start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, text

from backends.base import Stage
from service.audit import AuditUnavailable
from service.audit_chain import records
from service.rotation.records import State
from tests.rotation.conftest import Rig, principal

HOUR = 3600.0
STEPS = ["create", "set", "test", "finish"]
STARTED_THEN_DONE = [
    (f"rotation.{step}", outcome) for step in STEPS for outcome in ("started", "done")
]


def _rotation_records(rig: Rig) -> list[dict[str, Any]]:
    with rig.engine.connect() as connection:
        return [
            record.as_json()
            for record in records(connection, "dev")
            if record.event.action.startswith("rotation.")
        ]


def _steps(rig: Rig) -> list[tuple[str, str]]:
    return [(r["action"], r["outcome"]) for r in _rotation_records(rig)]


@contextmanager
def _audit_gone(engine: Engine) -> Iterator[None]:
    """The audit table renamed away, as a store that lost it, then back."""
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE audit_records RENAME TO audit_gone"))
    try:
        yield
    finally:
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE audit_gone RENAME TO audit_records"))


@contextmanager
def _only_starts_recorded(engine: Engine) -> Iterator[None]:
    """A store that takes a step's start and refuses every other record."""
    if engine.dialect.name == "sqlite":
        create = [
            "CREATE TRIGGER only_starts BEFORE INSERT ON audit_records "
            "WHEN NEW.outcome <> 'started' "
            "BEGIN SELECT RAISE(ABORT, 'the audit store is full'); END"
        ]
        drop = ["DROP TRIGGER only_starts"]
    else:
        create = [
            "CREATE FUNCTION refuse_record() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'the audit store is full'; END $$",
            "CREATE TRIGGER only_starts BEFORE INSERT ON audit_records "
            "FOR EACH ROW WHEN (NEW.outcome <> 'started') "
            "EXECUTE FUNCTION refuse_record()",
        ]
        drop = [
            "DROP TRIGGER only_starts ON audit_records",
            "DROP FUNCTION refuse_record()",
        ]
    with engine.begin() as connection:
        for statement in create:
            connection.execute(text(statement))
    try:
        yield
    finally:
        with engine.begin() as connection:
            for statement in drop:
                connection.execute(text(statement))


def test_each_step_is_recorded_as_started_then_done(rig: Rig) -> None:
    rig.put("app/db", "<PW1>")

    rig.rotate()

    assert _steps(rig) == STARTED_THEN_DONE


def test_a_step_record_names_the_secret_new_version_and_rotation(rig: Rig) -> None:
    rig.put("app/db", "<PW1>")

    rotation = rig.rotate()

    finish = _rotation_records(rig)[-1]
    assert (finish["actor"], finish["target"], finish["version"]) == (
        "rotation", "app/db", "2",
    )  # fmt: skip
    assert finish["detail"]["rotation_id"] == rotation.id


def test_steps_run_on_request_are_recorded_as_the_requesting_service(
    rig: Rig,
) -> None:
    rig.put("app/db", "<PW1>")

    asyncio.run(
        rig.service.rotate(
            rig.environment, principal("rotator"), "app/db", request_id="req-7",
            source="192.0.2.7",
        )
    )  # fmt: skip

    found = {(r["actor"], r["request_id"], r["source"]) for r in _rotation_records(rig)}
    assert found == {("rotator", "req-7", "192.0.2.7")}


def test_a_failing_step_is_recorded_failed_then_needing_attention(rig: Rig) -> None:
    rig.put("app/db", "<PW1>")
    rig.target.fail_apply = 10

    first = rig.rotate()
    for wait in (10, 20):
        rig.clock.advance(wait)
        rig.run(first.id)

    ends = [o for a, o in _steps(rig) if a == "rotation.set" and o != "started"]
    assert ends == ["failed", "failed", "needs_attention"]
    assert _rotation_records(rig)[-1]["detail"]["error"]


def test_a_test_the_target_has_not_passed_yet_is_recorded_as_waiting(
    rig: Rig,
) -> None:
    rig.put("app/db", "<PW1>")
    rig.target.accept_delay = 1.0

    rig.rotate()

    assert ("rotation.test", "waiting") in _steps(rig)


def test_a_retirement_is_recorded_with_the_version_it_retired(rig: Rig) -> None:
    rig.put("app/db", "<PW1>")
    rotation = rig.rotate()
    rig.clock.advance(HOUR)

    rig.service.retirement.retire_due()

    retire = [r for r in _rotation_records(rig) if r["action"] == "rotation.retire"]
    assert [(r["outcome"], r["version"]) for r in retire] == [
        ("started", "1"), ("done", "1"),
    ]  # fmt: skip
    assert retire[-1]["detail"]["rotation_id"] == rotation.id


def test_a_step_whose_start_cannot_be_recorded_does_not_run(rig: Rig) -> None:
    rig.put("app/db", "<PW1>")

    with _audit_gone(rig.engine), pytest.raises(AuditUnavailable):
        rig.rotate()

    assert rig.stages() == {Stage.CURRENT: "1"}
    assert rig.target.minted == 0


def test_a_held_rotation_resumes_once_its_lease_expires(rig: Rig) -> None:
    """As after a crash: another process takes it over, from the same step."""
    rig.put("app/db", "<PW1>")
    with _audit_gone(rig.engine), pytest.raises(AuditUnavailable):
        rig.rotate()
    other = rig.another_process()

    rig.clock.advance(rig.settings.lease_seconds + 1)
    other.service.worker.tick()

    [rotation] = rig.service.store.history("dev", "app/db")
    assert rotation.state is State.GRACE
    assert rig.stages() == {Stage.CURRENT: "2", Stage.PREVIOUS: "1"}
    assert _steps(rig) == STARTED_THEN_DONE


def test_a_held_retirement_leaves_the_previous_version_readable(rig: Rig) -> None:
    rig.put("app/db", "<PW1>")
    rig.rotate()
    rig.clock.advance(HOUR)

    with _audit_gone(rig.engine):
        rig.service.worker.tick()

    assert rig.read("app/db", "svc-a", stage=Stage.PREVIOUS).value.reveal() == b"<PW1>"
    assert rig.target.revoked == []


def test_a_held_retirement_is_finished_once_its_lease_expires(rig: Rig) -> None:
    rig.put("app/db", "<PW1>")
    rig.rotate()
    rig.clock.advance(HOUR)
    with _audit_gone(rig.engine):
        rig.service.worker.tick()

    rig.clock.advance(rig.settings.lease_seconds + 1)
    rig.service.worker.tick()

    assert rig.target.revoked == [b"<PW1>"]


def test_a_step_whose_end_cannot_be_recorded_still_lets_the_rotation_finish(
    rig: Rig,
) -> None:
    """The step has happened; the next one's start is what the audit gates."""
    rig.put("app/db", "<PW1>")

    with _only_starts_recorded(rig.engine):
        rotation = rig.rotate()

    assert rotation.state is State.GRACE
    assert _steps(rig) == [(f"rotation.{step}", "started") for step in STEPS]


def test_a_rotation_record_holds_no_value(rig: Rig) -> None:
    rig.put("app/db", "<PW1>")
    rig.target.fail_apply = 1
    first = rig.rotate()
    rig.clock.advance(10)
    rig.run(first.id)
    rig.clock.advance(HOUR)

    rig.service.retirement.retire_due()

    exported = repr(_rotation_records(rig))
    assert "<PW" not in exported
