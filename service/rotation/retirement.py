"""The end of a previous version: retired after its grace period.

Retiring revokes the old credential at the target (through the generator) and
then disables the version in its backend; in that order, so a crash between
the two can read the value again and repeat the idempotent revoke.

With `retire: when-unused` the previous version goes as soon as every service
that read it during the last grace period has read the new one, or at
`max_grace`, whichever comes first. Reads are flushed by every process only
periodically, so no retirement happens until two flush intervals have passed
since the rotation finished: reads of the old version from before the finish
have reached the store by then.

A retirement is audited like a step of its rotation (rotation/audit.py): one
whose start cannot be recorded does not happen, and keeps the lease until it
expires.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from policies.model import Retire
from service.clock import Clock
from service.errors import VersionGone
from service.rotation.audit import BROKER, Actor, RotationAudit
from service.rotation.consumers import ConsumerTracker
from service.rotation.events import Event, RotationEvents
from service.rotation.generators import RotationContext
from service.rotation.plans import Planner, describe
from service.rotation.records import (
    LeaseLost,
    Rotation,
    RotationStore,
    State,
    Step,
    holder,
    run_lease,
)
from service.rotation.settings import RotationSettings

log = structlog.get_logger(__name__)


class Retirement:
    """Finds previous versions whose time is up and retires them."""

    def __init__(
        self,
        store: RotationStore,
        planner: Planner,
        settings: RotationSettings,
        clock: Clock,
        events: RotationEvents,
        consumers: ConsumerTracker,
        audit: RotationAudit,
        *,
        owner: str,
        changed: Callable[[str, str], None],
    ) -> None:
        self.store = store
        self.planner = planner
        self.settings = settings
        self.clock = clock
        self.events = events
        self.consumers = consumers
        self.audit = audit
        self.owner = owner
        # Drops the secret's cached reads in every process.
        self._changed = changed

    def retire_due(self) -> int:
        """Retire every previous version whose time is up; answer how many.

        Raises AuditUnavailable, and retires no more, when a retirement could
        not be recorded as started.
        """
        retired = 0
        for rotation in self.store.in_grace():
            if not self.due(rotation):
                continue
            lease = run_lease(self.owner)
            claimed = self.store.claim(rotation.id, lease, self.settings.lease_seconds)
            if claimed is None:
                continue
            if claimed.state is not State.GRACE:
                self.store.release(rotation.id, lease)
                continue
            try:
                done = self.retire(claimed)
            except LeaseLost:
                continue
            self.store.release(rotation.id, lease)
            retired += done.state is State.COMPLETED
        return retired

    def due(self, rotation: Rotation) -> bool:
        """Whether the previous version of `rotation` should go now."""
        now = self.clock.now()
        if rotation.grace_until is not None and rotation.grace_until <= now:
            return True
        if rotation.retire_policy != Retire.WHEN_UNUSED.value:
            return False
        assert rotation.finished_at is not None
        if now < rotation.finished_at + 2 * self.settings.consumer_flush_seconds:
            return False
        return self.moved_on(rotation)

    def moved_on(self, rotation: Rotation) -> bool:
        """Whether every recent reader of the old version has read the new one."""
        assert rotation.finished_at is not None
        grace = self.planner.plan(rotation.env, rotation.secret).grace
        since = rotation.finished_at - grace
        seen = self.consumers.consumers(rotation.env, rotation.secret)
        readers = {
            c.service
            for c in seen
            if c.version == rotation.old_version and c.last_read_at >= since
        }
        movers = {c.service for c in seen if c.version == rotation.new_version}
        return readers <= movers

    def retire(self, rotation: Rotation, actor: Actor = BROKER) -> Rotation:
        """Revoke and disable the previous version; the caller holds the lease
        (the one `rotation` was claimed under).

        Raises AuditUnavailable before anything is touched when the start of
        the retirement cannot be recorded.
        """
        self.audit.started(rotation, Step.RETIRE, actor)
        ended = self._retire(rotation)
        self.audit.ended(ended, Step.RETIRE, actor, no_grace=rotation.no_grace or None)
        return ended

    def _retire(self, rotation: Rotation) -> Rotation:
        plan = self.planner.plan(rotation.env, rotation.secret)
        backend, path = plan.location.backend, plan.location.path
        assert rotation.old_version is not None
        self.store.begin_step(rotation.id, Step.RETIRE)
        try:
            try:
                value = backend.read(path, version=rotation.old_version).value
            except VersionGone:
                value = None
            if value is not None:
                maker = self.store.created_version(
                    rotation.env, rotation.secret, rotation.old_version
                )
                plan.generator.revoke(
                    RotationContext(rotation.env, rotation.secret, rotation.id),
                    value,
                    maker.credential_ref if maker else None,
                )
            backend.set_enabled(path, rotation.old_version, False)
        except LeaseLost:
            raise
        except Exception as error:
            return self._failed(rotation, error)
        self._changed(rotation.env, rotation.secret)
        self.store.end_step(rotation.id, Step.RETIRE, "done")
        saved = self.store.save(
            rotation.replace(
                state=State.COMPLETED, retired_at=self.clock.now(), error=None,
                failed_step=None,
            ),
            holder(rotation),
            self.settings.lease_seconds,
        )  # fmt: skip
        self.events.emit(
            Event.PREVIOUS_RETIRED,
            rotation.env,
            rotation.secret,
            saved,
            retired_version=rotation.old_version,
            no_grace=rotation.no_grace,
        )
        return saved

    def _failed(self, rotation: Rotation, error: Exception) -> Rotation:
        message = describe(error)
        self.store.end_step(rotation.id, Step.RETIRE, "failed", message)
        attempts = rotation.attempts + 1
        delay = min(
            self.settings.retry_backoff_max_seconds,
            self.settings.retry_backoff_seconds * 2 ** (attempts - 1),
        )
        saved = self.store.save(
            rotation.replace(
                attempts=attempts,
                failed_step=Step.RETIRE.value,
                error=message,
                grace_until=self.clock.now() + delay,
            ),
            holder(rotation),
            self.settings.lease_seconds,
        )
        self.events.emit(Event.FAILED, rotation.env, rotation.secret, saved)
        return saved
