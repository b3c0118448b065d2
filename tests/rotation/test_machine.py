"""The state machine: create, set, test, finish, and what a failure leaves."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from backends.base import Stage
from service.errors import PermissionDenied, SecretNotFound, VersionDisabled
from service.rotation.records import State
from service.sensitive import Sensitive
from service.store.tables import local_secrets
from tests.rotation.conftest import Rig
from tests.rotation.fakes import Crash, HeldTarget
from tests.service.compromise_setup import (
    HELD,
    Node,
    hold_rotations,
    nodes,
    store,  # noqa: F401
)
from tests.service.conftest import FakeClock


def test_rotation_makes_a_new_current_version_and_keeps_the_old_as_previous(
    rig: Rig,
) -> None:
    rig.put("app/db", "<PW1>")

    rotation = rig.rotate()

    assert rotation.state is State.GRACE
    assert rig.stages() == {Stage.CURRENT: "2", Stage.PREVIOUS: "1"}
    assert rig.value() == "<PW2>"


def test_rotation_record_lists_each_step_it_ran(rig: Rig) -> None:
    rig.put("app/db", "<PW1>")

    rotation = rig.rotate()

    steps = rig.service.store.steps(rotation.id)
    assert [(s.step, s.outcome) for s in steps] == [
        ("create", "done"), ("set", "done"), ("test", "done"), ("finish", "done"),
    ]  # fmt: skip


def test_rotating_a_secret_that_never_had_a_value_gives_it_its_first(
    rig: Rig,
) -> None:
    rotation = rig.rotate()

    assert rotation.state is State.COMPLETED
    assert rig.stages() == {Stage.CURRENT: "1"}


def test_failed_step_is_retried_with_backoff_then_stops_for_a_person(
    rig: Rig,
) -> None:
    rig.put("app/db", "<PW1>")
    rig.target.fail_apply = 10

    first = rig.rotate()
    rig.clock.advance(10)
    second = rig.run(first.id)
    rig.clock.advance(20)
    third = rig.run(first.id)

    assert (first.state, first.attempts) == (State.RETRYING, 1)
    assert (second.state, second.attempts) == (State.RETRYING, 2)
    assert (third.state, third.attempts) == (State.NEEDS_ATTENTION, 3)
    assert rig.event_types()[-2:] == ["failed", "needs_attention"]


def test_retry_before_its_backoff_has_passed_does_nothing(rig: Rig) -> None:
    rig.put("app/db", "<PW1>")
    rig.target.fail_apply = 1

    first = rig.rotate()
    rig.clock.advance(5)
    again = rig.run(first.id)

    assert again.attempts == 1
    assert again.state is State.RETRYING


def test_rotation_that_needs_attention_holds_the_secret_against_new_ones(
    rig: Rig,
) -> None:
    rig.put("app/db", "<PW1>")
    rig.target.fail_apply = 10
    first = rig.rotate()
    for _ in range(3):
        rig.clock.advance(60)
        rig.run(first.id)

    opened = rig.service.store.open("dev", "app/db", trigger="schedule",
                                    retire_policy="after-grace")  # fmt: skip

    assert opened is not None
    assert not opened.created
    assert opened.rotation.id == first.id


def test_person_asking_again_resumes_a_rotation_that_needs_attention(
    rig: Rig,
) -> None:
    rig.put("app/db", "<PW1>")
    rig.target.fail_apply = 3
    first = rig.rotate()
    for _ in range(2):
        rig.clock.advance(60)
        rig.run(first.id)

    resumed = rig.rotate()

    assert resumed.id == first.id
    assert resumed.state is State.GRACE
    assert rig.stages()[Stage.CURRENT] == first.new_version


def fail_at_set(rig: Rig) -> str:
    """Case C01's start: v1 current, R1 created v2 (pending), then set failed."""
    rig.put("app/db", "<PW1>")
    rig.target.fail_apply = 100
    return rig.rotate().id


def test_c01a_failed_rotation_leaves_current_on_the_old_version(rig: Rig) -> None:
    fail_at_set(rig)

    assert rig.value() == "<PW1>"
    assert rig.stages() == {Stage.CURRENT: "1", Stage.PENDING: "2"}


def test_c01b_ordinary_consumer_cannot_read_pending(rig: Rig) -> None:
    fail_at_set(rig)

    with pytest.raises(PermissionDenied):
        rig.read("app/db", "svc-a", stage=Stage.PENDING)


def test_c01c_pending_before_create_stored_a_value_is_not_found(rig: Rig) -> None:
    rig.put("app/db", "<PW1>")
    rig.target.crash_in = "create"

    with pytest.raises(Crash):
        rig.rotate()

    with pytest.raises(SecretNotFound):
        rig.backend.read("app/db", stage=Stage.PENDING)


def test_c01d_rotating_again_resumes_with_the_same_version_and_shows_the_failure(
    rig: Rig,
) -> None:
    first = fail_at_set(rig)

    again = rig.rotate()

    assert again.id == first
    assert again.new_version == "2"
    assert (again.failed_step, again.attempts) == ("set", 2)
    assert [info.version for info in rig.backend.versions("app/db")] == ["1", "2"]


def test_c01e_admin_write_becomes_current_and_ends_the_failed_rotation(
    rig: Rig,
) -> None:
    first = fail_at_set(rig)

    rig.put("app/db", "<ADMIN>")
    rig.clock.advance(60)
    ended = rig.run(first)

    assert rig.value() == "<ADMIN>"
    assert Stage.PENDING not in rig.stages()
    assert ended.state is State.ABANDONED


def test_c01e_next_rotation_after_an_admin_write_starts_fresh(rig: Rig) -> None:
    first = fail_at_set(rig)
    rig.put("app/db", "<ADMIN>")
    rig.clock.advance(60)
    rig.run(first)
    rig.target.fail_apply = 0

    fresh = rig.rotate()

    assert fresh.id != first
    assert (fresh.state, fresh.old_version) == (State.GRACE, "3")


def test_c01_variant_pending_on_the_current_version_is_a_finished_rotation(
    rig: Rig,
) -> None:
    rig.put("app/db", "<PW1>")
    rig.put("app/db", "<PW1b>")
    with rig.engine.begin() as connection:
        connection.execute(
            update(local_secrets)
            .where(local_secrets.c.env == "dev", local_secrets.c.path == "app/db")
            .values(pending_version=2)
        )

    rotation = rig.rotate()

    assert rotation.state is State.GRACE
    assert rig.stages() == {Stage.CURRENT: "3", Stage.PREVIOUS: "2"}


def test_stray_pending_version_is_disabled_and_does_not_block_rotation(
    rig: Rig,
) -> None:
    rig.put("app/db", "<PW1>")
    stray = rig.backend.write(
        "app/db", Sensitive.from_text("<STRAY>"), binary=False, stage=Stage.PENDING
    )

    rotation = rig.rotate()

    assert rotation.state is State.GRACE
    assert rig.stages()[Stage.CURRENT] == "3"
    with pytest.raises(VersionDisabled):
        rig.backend.read("app/db", version=stray.version)


def test_c02_test_step_retries_until_the_target_accepts_the_new_value(
    rig: Rig,
) -> None:
    rig.put("app/db", "<PW1>")
    rig.target.accept_delay = 8.0

    rotation = rig.rotate()
    while rotation.state is State.RUNNING:
        assert rig.value() == "<PW1>"
        rig.clock.current = rotation.next_attempt_at
        rotation = rig.run(rotation.id)

    assert rotation.state is State.GRACE
    assert rig.value() == "<PW2>"
    assert 8.0 <= rig.clock.now() - rotation.test_started_at <= 10.0  # type: ignore[operator]


def test_c02_exactly_one_new_version_is_created_while_test_retries(rig: Rig) -> None:
    rig.put("app/db", "<PW1>")
    rig.target.accept_delay = 8.0

    rotation = rig.rotate()
    while rotation.state is State.RUNNING:
        rig.clock.current = rotation.next_attempt_at
        rotation = rig.run(rotation.id)

    assert len(rig.backend.versions("app/db")) == 2
    assert rig.target.minted == 1


def test_c02_test_window_running_out_reports_diverged_and_keeps_current(
    rig: Rig,
) -> None:
    rig.put("app/db", "<PW1>")
    rig.target.accept_delay = 3600.0

    rotation = rig.rotate()
    while rotation.state is State.RUNNING:
        rig.clock.current = rotation.next_attempt_at
        rotation = rig.run(rotation.id)

    assert rotation.state is State.NEEDS_ATTENTION
    assert rotation.diverged
    assert "diverged" in (rotation.error or "")
    assert rig.value() == "<PW1>"
    assert "needs_attention" in rig.event_types()


def test_c02_no_fresh_rotation_starts_on_top_of_a_diverged_one(rig: Rig) -> None:
    rig.put("app/db", "<PW1>")
    rig.target.accept_delay = 3600.0
    rotation = rig.rotate()
    while rotation.state is State.RUNNING:
        rig.clock.current = rotation.next_attempt_at
        rotation = rig.run(rotation.id)

    opened = rig.service.store.open("dev", "app/db", trigger="schedule",
                                    retire_policy="after-grace")  # fmt: skip

    assert opened is not None
    assert opened.rotation.id == rotation.id


@pytest.fixture
def held(
    tmp_path: Path,
    clock: FakeClock,
    store: str,  # noqa: F811
) -> Iterator[tuple[Node, HeldTarget]]:
    """A broker on each store whose `payments/held` rotates with a HeldTarget."""
    with nodes(tmp_path, clock, store=store) as (node,):
        yield node, hold_rotations(node)


def test_parallel_requests_to_rotate_one_secret_join_the_running_rotation(
    held: tuple[Node, HeldTarget],
) -> None:
    """Nine requests while one rotates: each answers that rotation's record."""
    node, target = held

    def rotate() -> httpx.Response:
        return node.admin("POST", f"secrets/{HELD}/rotate")

    with ThreadPoolExecutor(10) as pool:
        first = pool.submit(rotate)
        target.wait_until_held()
        joined = [pool.submit(rotate) for _ in range(9)]
        while_held = [future.result() for future in joined]
        target.release()
        done = first.result()

    assert [answer.status_code for answer in while_held] == [202] * 9
    assert done.status_code == 200
    assert {answer.json()["id"] for answer in while_held} == {done.json()["id"]}
    assert target.created == 1
