"""A process that dies at any step is taken over once its lease expires.

`Crash` is a BaseException: like SIGKILL, it skips every `except Exception`
and leaves the lease in place. A second rotation service on the same store
plays the process that takes over.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from backends.base import Stage
from service.rotation.records import State
from tests.rotation.conftest import Rig
from tests.rotation.fakes import Crash

GENERATOR_POINTS = ["create", "create:after", "apply", "apply:after", "test"]
BACKEND_POINTS = ["write", "promote"]


def crash_after(method: Callable[..., Any]) -> Callable[..., Any]:
    calls = {"count": 0}

    def crashing(*args: Any, **kwargs: Any) -> Any:
        result = method(*args, **kwargs)
        calls["count"] += 1
        if calls["count"] == 1:
            raise Crash(method.__name__)
        return result

    return crashing


def crash_and_take_over(rig: Rig) -> Rig:
    with pytest.raises(Crash):
        rig.rotate()
    other = rig.another_process()
    rig.clock.advance(rig.settings.lease_seconds + 1)
    other.service.worker.tick()
    return other


@pytest.mark.parametrize("point", GENERATOR_POINTS)
def test_rotation_killed_in_the_generator_resumes_to_one_new_version(
    rig: Rig, point: str
) -> None:
    rig.put("app/db", "<PW1>")
    rig.target.crash_in = point

    crash_and_take_over(rig)

    assert rig.stages() == {Stage.CURRENT: "2", Stage.PREVIOUS: "1"}


@pytest.mark.parametrize("point", BACKEND_POINTS)
def test_rotation_killed_after_a_backend_call_resumes_to_one_new_version(
    rig: Rig, point: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig.put("app/db", "<PW1>")
    monkeypatch.setattr(rig.backend, point, crash_after(getattr(rig.backend, point)))

    crash_and_take_over(rig)

    assert rig.stages() == {Stage.CURRENT: "2", Stage.PREVIOUS: "1"}


@pytest.mark.parametrize("point", GENERATOR_POINTS + BACKEND_POINTS)
def test_resumed_rotation_ends_in_grace_with_the_value_the_target_accepted(
    rig: Rig, point: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig.put("app/db", "<PW1>")
    if point in BACKEND_POINTS:
        method = getattr(rig.backend, point)
        monkeypatch.setattr(rig.backend, point, crash_after(method))
    else:
        rig.target.crash_in = point

    crash_and_take_over(rig)

    [rotation] = rig.service.store.history("dev", "app/db")
    assert rotation.state is State.GRACE
    assert rig.value().encode() in rig.target.applied_at


def test_a_live_lease_is_not_taken_over(rig: Rig) -> None:
    rig.put("app/db", "<PW1>")
    rig.target.crash_in = "apply"
    with pytest.raises(Crash):
        rig.rotate()
    other = rig.another_process()

    rig.clock.advance(rig.settings.lease_seconds - 1)
    other.service.worker.tick()

    assert rig.stages() == {Stage.CURRENT: "1", Stage.PENDING: "2"}


@pytest.mark.parametrize("point", ["revoke", "set_enabled"])
def test_retirement_killed_midway_is_finished_by_another_process(
    rig: Rig, point: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig.put("app/db", "<PW1>")
    rig.rotate()
    if point == "revoke":
        rig.target.crash_in = "revoke"
    else:
        method = rig.backend.set_enabled
        monkeypatch.setattr(rig.backend, "set_enabled", crash_after(method))
    rig.clock.advance(3600)
    with pytest.raises(Crash):
        rig.service.retirement.retire_due()
    other = rig.another_process()

    rig.clock.advance(rig.settings.lease_seconds + 1)
    other.service.worker.tick()

    [rotation] = rig.service.store.history("dev", "app/db")
    assert rotation.state is State.COMPLETED
    assert b"<PW1>" in rig.target.revoked
