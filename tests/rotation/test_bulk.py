"""Bulk rotation: batches under a rate limit, one result per secret."""

from __future__ import annotations

import asyncio

from service.errors import BackendUnavailable
from service.rotation.bulk import rotate_in_batches
from service.rotation.records import Rotation, State, Step


class Time:
    def __init__(self) -> None:
        self.now = 0.0
        self.started: dict[str, float] = {}

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def record(name: str) -> Rotation:
    return Rotation(id=name, env="dev", secret=name, trigger="bulk",
                    state=State.GRACE, step=Step.RETIRE,
                    retire_policy="after-grace", created_at=0, updated_at=0,
                    next_attempt_at=0)  # fmt: skip


def test_batches_start_no_faster_than_the_rate_limit() -> None:
    time = Time()

    async def rotate(name: str) -> Rotation:
        time.started[name] = time.now
        return record(name)

    names = [f"s{n}" for n in range(10)]
    asyncio.run(rotate_in_batches(names, rotate, batch_size=4, per_second=2.0,
                                  now=lambda: time.now, sleep=time.sleep))  # fmt: skip

    assert [time.started[f"s{n}"] for n in (0, 3, 4, 7, 8, 9)] == [
        0.0, 0.0, 2.0, 2.0, 4.0, 4.0,
    ]  # fmt: skip


def test_one_failure_does_not_stop_the_others() -> None:
    time = Time()

    async def rotate(name: str) -> Rotation:
        if name == "s1":
            raise BackendUnavailable("store down")
        return record(name)

    results = asyncio.run(rotate_in_batches(["s0", "s1", "s2"], rotate, batch_size=2,
                                            per_second=100.0, now=lambda: time.now,
                                            sleep=time.sleep))  # fmt: skip

    assert [(r.name, r.error is None) for r in results] == [
        ("s0", True), ("s1", False), ("s2", True),
    ]  # fmt: skip


def test_each_backend_is_paced_on_its_own() -> None:
    """Two stores' first batches start together; each keeps its own rate."""
    time = Time()

    async def rotate(name: str) -> Rotation:
        time.started[name] = time.now
        return record(name)

    names = ["a0", "b0", "a1", "b1", "a2", "b2"]
    asyncio.run(rotate_in_batches(names, rotate, batch_size=2, per_second=1.0,
                                  backend_of=lambda name: name[0],
                                  now=lambda: time.now, sleep=time.sleep))  # fmt: skip

    assert {name: time.started[name] for name in ("a0", "b0", "a2", "b2")} == {
        "a0": 0.0, "b0": 0.0, "a2": 2.0, "b2": 2.0,
    }  # fmt: skip


def test_results_come_back_in_the_order_asked_across_backends() -> None:
    """Grouping by backend never reorders the answer."""
    time = Time()

    async def rotate(name: str) -> Rotation:
        return record(name)

    names = ["b1", "a1", "b0", "a0"]
    results = asyncio.run(rotate_in_batches(names, rotate, batch_size=1,
                                            per_second=100.0,
                                            backend_of=lambda name: name[0],
                                            now=lambda: time.now,
                                            sleep=time.sleep))  # fmt: skip

    assert [result.name for result in results] == names


def test_an_unexpected_failure_is_reported_for_its_secret_only() -> None:
    """Case C27: nothing is dropped, not even on an error nobody planned for."""
    time = Time()

    async def rotate(name: str) -> Rotation:
        if name == "s1":
            raise RuntimeError("a bug")
        return record(name)

    results = asyncio.run(rotate_in_batches(["s0", "s1", "s2"], rotate, batch_size=3,
                                            per_second=100.0, now=lambda: time.now,
                                            sleep=time.sleep))  # fmt: skip

    assert [(r.name, r.error.code if r.error else None) for r in results] == [
        ("s0", None), ("s1", "server_error"), ("s2", None),
    ]  # fmt: skip
    assert "a bug" not in str(results[1].error)
