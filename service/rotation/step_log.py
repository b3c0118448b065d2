"""The step log of rotations: when each step started and ended, and how.

A step is recorded as started before it runs, so a crash shows which step a
rotation was in; a step that runs again after a crash or a retry counts runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, select, update

from service.clock import Clock, utc
from service.store.rotation_tables import rotation_steps as steps_table


class Step(StrEnum):
    """The steps of a rotation, in order."""

    CREATE = "create"
    SET = "set"
    TEST = "test"
    FINISH = "finish"
    RETIRE = "retire"


@dataclass(frozen=True, slots=True)
class StepRecord:
    """What happened in one step of a rotation."""

    step: str
    started_at: float
    finished_at: float | None
    runs: int
    outcome: str
    error: str | None


class StepLog:
    """Reads and writes the step log; the rotation store builds on it."""

    engine: Engine
    clock: Clock
    _insert: Any

    def steps(self, rotation_id: str) -> list[StepRecord]:
        query = select(steps_table).where(steps_table.c.rotation_id == rotation_id)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        order = list(Step)
        rows = sorted(rows, key=lambda row: order.index(Step(row.step)))
        return [
            StepRecord(
                row.step,
                row.started_at.timestamp(),
                row.finished_at.timestamp() if row.finished_at else None,
                row.runs,
                row.outcome,
                row.error,
            )
            for row in rows
        ]

    def begin_step(self, rotation_id: str, step: Step) -> None:
        """Record that `step` starts (again) now, before it runs."""
        now = utc(self.clock.now())
        statement = self._insert(steps_table).values(
            rotation_id=rotation_id, step=step.value, started_at=now, runs=1,
            outcome="running",
        )  # fmt: skip
        statement = statement.on_conflict_do_update(
            index_elements=["rotation_id", "step"],
            set_={
                "runs": steps_table.c.runs + 1,
                "outcome": "running",
                "finished_at": None,
                "error": None,
            },
        )
        with self.engine.begin() as connection:
            connection.execute(statement)

    def end_step(
        self, rotation_id: str, step: Step, outcome: str, error: str | None = None
    ) -> None:
        """Record how the latest run of `step` ended."""
        with self.engine.begin() as connection:
            connection.execute(
                update(steps_table)
                .where(
                    steps_table.c.rotation_id == rotation_id,
                    steps_table.c.step == step.value,
                )
                .values(outcome=outcome, error=error, finished_at=utc(self.clock.now()))
            )
