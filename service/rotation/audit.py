"""Rotation in the audit chain: every run of a step, and every retirement.

A step (create, set, test, finish, retire) is recorded as `started` before it
runs, with who drives it, the secret, the version and the rotation id. When
that record cannot be committed the step does not run: AuditUnavailable goes
up to whoever drives the rotation, which keeps its lease, so that the rotation
resumes once the lease has expired, exactly as after a crash (every step is
idempotent under the rotation id). How a step ended is recorded after it:
`done`, `waiting` (the target has not accepted the new value yet), `failed`
(retried later), `needs_attention` or `abandoned`. When that record cannot be
committed, the step has happened all the same: the failure is logged, and the
next step's `started` record, which cannot be skipped, holds the rotation until
the audit log is back.

Records name secrets, versions and rotation ids; never a value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import structlog

from service.audit import AuditLog, AuditUnavailable
from service.rotation.records import Rotation, State, Step

log = structlog.get_logger(__name__)

STARTED: Final = "started"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who drives a rotation: a service through the API, or the broker itself."""

    name: str
    request_id: str | None = None
    source: str | None = None


# Steps run by the background worker: scheduled rotations, retries, retirement.
BROKER: Final = Actor("rotation")


class RotationAudit:
    """Records the steps of rotations in their environment's audit chain."""

    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit

    def started(self, rotation: Rotation, step: Step, actor: Actor) -> None:
        """Record that `step` is about to run. Raises AuditUnavailable."""
        try:
            self._record(rotation, step, STARTED, actor)
        except AuditUnavailable:
            log.warning(
                "rotation_step_held",
                env=rotation.env,
                secret=rotation.secret,
                rotation_id=rotation.id,
                step=step.value,
            )
            raise

    def ended(
        self, rotation: Rotation, step: Step, actor: Actor, **detail: Any
    ) -> None:
        """Record how `step` ended, as `rotation` (after it) shows."""
        outcome = ended_as(step, rotation)
        if outcome in _FAILURES:
            detail.update(error=rotation.error, diverged=rotation.diverged or None)
        try:
            self._record(rotation, step, outcome, actor, **detail)
        except AuditUnavailable:
            log.error(
                "audit_outcome_unrecorded",
                env=rotation.env,
                action=f"rotation.{step.value}",
                target=rotation.secret,
                rotation_id=rotation.id,
                outcome=outcome,
            )

    def _record(
        self,
        rotation: Rotation,
        step: Step,
        outcome: str,
        actor: Actor,
        **detail: Any,
    ) -> None:
        retiring = step is Step.RETIRE
        self._audit.record(
            rotation.env,
            f"rotation.{step.value}",
            outcome,
            actor=actor.name,
            target=rotation.secret,
            version=rotation.old_version if retiring else rotation.new_version,
            request_id=actor.request_id,
            source=actor.source,
            rotation_id=rotation.id,
            trigger=rotation.trigger,
            attempts=rotation.attempts or None,
            **detail,
        )


def ended_as(step: Step, rotation: Rotation) -> str:
    """The outcome of a run of `step` that left the rotation as `rotation`."""
    if rotation.state in _OUTCOMES:
        return _OUTCOMES[rotation.state]
    if rotation.state is State.GRACE and rotation.failed_step == step.value:
        return "failed"  # a retirement, tried again later
    if rotation.state is State.RUNNING and rotation.step is step:
        return "waiting"
    return "done"


_OUTCOMES: Final = {
    State.RETRYING: "failed",
    State.NEEDS_ATTENTION: "needs_attention",
    State.ABANDONED: "abandoned",
}
_FAILURES: Final = frozenset({"failed", "needs_attention"})
