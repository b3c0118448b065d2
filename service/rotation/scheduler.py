"""Turning schedules into rotations, exactly once across broker processes.

Each tick, `reconcile` gives every secret whose policy declares a schedule a
row with its next slot (and drops schedules no longer declared), and
`open_due` opens a rotation for every slot that is due. Opening moves the
schedule to its next slot with a compare-and-set on the slot, in the same
transaction that opens the rotation: of several processes ticking at once,
exactly one opens it.

Slots missed while no broker ran are coalesced: the one catch-up run starts
late (and says so), and the schedule continues at its next slot after now, not
at now plus the period. A slot older than the allowed window is reported as
missed and not run.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import structlog

from service.clock import Clock
from service.environment import Environment
from service.rotation.events import Event, RotationEvents
from service.rotation.records import RotationStore, SlotClaim
from service.rotation.schedule import Lateness, Schedule
from service.rotation.settings import RotationSettings

log = structlog.get_logger(__name__)


class Scheduler:
    """Plans schedules and opens due rotations for every environment."""

    def __init__(
        self,
        store: RotationStore,
        environments: Mapping[str, Environment],
        settings: RotationSettings,
        clock: Clock,
        events: RotationEvents,
    ) -> None:
        self.store = store
        self.environments = environments
        self.settings = settings
        self.clock = clock
        self.events = events
        self._invalid: set[tuple[str, str, str]] = set()

    def tick(self) -> list[str]:
        """Reconcile and open what is due; answer the ids of opened rotations."""
        opened: list[str] = []
        for env, environment in self.environments.items():
            schedules = self._declared(env, environment)
            rows = self.store.schedules(env)
            self._reconcile(env, schedules, rows)
            opened.extend(self._open_due(env, schedules))
        return opened

    def _declared(self, env: str, environment: Environment) -> dict[str, Any]:
        declared: dict[str, Any] = {}
        for secret, declaration in environment.policy.declarations().items():
            rotation = declaration.rotation
            if rotation is None:
                continue
            try:
                declared[secret] = (Schedule.of(rotation), rotation)
            except ValueError:
                key = (env, secret, str(rotation.cron))
                if key not in self._invalid:
                    self._invalid.add(key)
                    log.error("rotation_schedule_invalid", env=env, secret=secret)
        return declared

    def _reconcile(
        self, env: str, declared: Mapping[str, Any], rows: Mapping[str, Any]
    ) -> None:
        now = self.clock.now()
        for secret, (schedule, _rotation) in declared.items():
            row = rows.get(secret)
            if row is not None and row.spec == schedule.spec:
                continue
            slot = schedule.first_slot(now)
            self.store.plan(
                env,
                secret,
                schedule.spec,
                slot,
                schedule.due_at(env, secret, slot),
                replacing=row.spec if row is not None else None,
            )
            log.info("rotation_scheduled", env=env, secret=secret, slot=_iso(slot))
        for secret, row in rows.items():
            if row.spec is not None and secret not in declared:
                self.store.plan(env, secret, None, None, None, replacing=row.spec)
                log.info("rotation_unscheduled", env=env, secret=secret)

    def _open_due(self, env: str, declared: Mapping[str, Any]) -> list[str]:
        now = self.clock.now()
        opened: list[str] = []
        for secret, row in self.store.schedules(env).items():
            if row.due_at is None or row.due_at.timestamp() > now:
                continue
            if secret not in declared or declared[secret][0].spec != row.spec:
                continue
            schedule, rotation = declared[secret]
            slot, due = row.slot_at.timestamp(), row.due_at.timestamp()
            next_slot = schedule.next_slot(slot, now)
            claim = SlotClaim(
                row.spec, slot, next_slot, schedule.due_at(env, secret, next_slot)
            )
            lateness = schedule.lateness(
                slot,
                due,
                now,
                late_after=self.settings.late_after_seconds,
                catch_up=self.settings.catch_up_seconds,
            )
            if lateness is Lateness.MISSED:
                if self.store.advance(env, secret, claim):
                    self.events.emit(
                        Event.MISSED, env, secret, slot=_iso(slot),
                        next_slot=_iso(next_slot),
                    )  # fmt: skip
                continue
            result = self.store.open(
                env,
                secret,
                trigger="schedule",
                retire_policy=rotation.retire.value,
                late=lateness is Lateness.LATE,
                claim=claim,
            )
            if result is None:
                continue
            if not result.created:
                log.info(
                    "rotation_slot_coalesced",
                    env=env,
                    secret=secret,
                    rotation_id=result.rotation.id,
                    slot=_iso(slot),
                )
                continue
            self.events.emit(Event.STARTED, env, secret, result.rotation)
            if lateness is Lateness.LATE:
                self.events.emit(
                    Event.LATE, env, secret, result.rotation, slot=_iso(slot),
                    next_slot=_iso(next_slot),
                )  # fmt: skip
            opened.append(result.rotation.id)
        return opened


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=UTC).isoformat()
