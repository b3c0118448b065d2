"""Rotation events: one structured log line, a metric and a CloudEvent each.

Event types (CloudEvents `type`, without the `tokenbroker.rotation.` prefix in
logs and webhook filters): started, succeeded, failed, needs_attention,
previous_retired, abandoned, late, missed. The data names the secret, the
rotation and versions, never a value.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import structlog

from service.clock import Clock
from service.rotation.metrics import RotationMetrics
from service.rotation.records import Rotation
from service.rotation.webhooks import Publisher

log = structlog.get_logger(__name__)

SPEC_VERSION = "1.0"


class Event(StrEnum):
    """What happened to a rotation."""

    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    NEEDS_ATTENTION = "needs_attention"
    PREVIOUS_RETIRED = "previous_retired"
    ABANDONED = "abandoned"
    LATE = "late"
    MISSED = "missed"


_OUTCOMES = {
    Event.SUCCEEDED: "succeeded",
    Event.FAILED: "failed",
    Event.NEEDS_ATTENTION: "needs_attention",
    Event.ABANDONED: "abandoned",
    Event.MISSED: "missed",
}


class RotationEvents:
    """Reports rotation events to the log, the metrics and the webhooks."""

    def __init__(
        self, source: str, clock: Clock, metrics: RotationMetrics, publish: Publisher
    ) -> None:
        self._source = source
        self._clock = clock
        self._metrics = metrics
        self._publish = publish

    def emit(
        self,
        event: Event,
        env: str,
        secret: str,
        rotation: Rotation | None = None,
        **data: Any,
    ) -> None:
        """Report `event`; `data` holds only names, versions, times and counts."""
        fields: dict[str, Any] = dict(data)
        if rotation is not None:
            fields.update(
                rotation_id=rotation.id,
                step=rotation.step.value,
                state=rotation.state.value,
                old_version=rotation.old_version,
                new_version=rotation.new_version,
                attempts=rotation.attempts,
                late=rotation.late,
            )
            if rotation.failed_step:
                fields.update(failed_step=rotation.failed_step, error=rotation.error)
        level = log.warning if event in _WARNINGS else log.info
        level(_LOG_EVENTS[event], env=env, secret=secret, **fields)
        outcome = _OUTCOMES.get(event)
        if outcome is not None:
            self._metrics.outcome(env, outcome)
        self._publish(self._cloud_event(event, env, secret, fields))

    def _cloud_event(
        self, event: Event, env: str, secret: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "specversion": SPEC_VERSION,
            "id": str(uuid.uuid4()),
            "source": f"{self._source}/v1/{env}",
            "type": f"tokenbroker.rotation.{event.value}",
            "subject": secret,
            "time": datetime.fromtimestamp(self._clock.now(), tz=UTC).isoformat(),
            "datacontenttype": "application/json",
            "tokenbrokerenv": env,
            "data": {"env": env, "secret": secret, **data},
        }


_LOG_EVENTS = {
    Event.STARTED: "rotation_started",
    Event.SUCCEEDED: "rotation_succeeded",
    Event.FAILED: "rotation_failed",
    Event.NEEDS_ATTENTION: "rotation_needs_attention",
    Event.PREVIOUS_RETIRED: "rotation_previous_retired",
    Event.ABANDONED: "rotation_abandoned",
    Event.LATE: "rotation_late",
    Event.MISSED: "rotation_missed",
}
_WARNINGS = frozenset({Event.FAILED, Event.NEEDS_ATTENTION, Event.LATE, Event.MISSED})
