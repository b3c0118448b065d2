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
