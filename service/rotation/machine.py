"""The rotation state machine: create -> set -> test -> finish.

Each step is recorded before it runs and is idempotent under the rotation's
id, so a rotation resumes after a crash from the step it was in:

- create: the generator makes a value, stored as a new version staged
  `pending` with the rotation id as idempotency key (a replay answers the same
  version). A stray pending version left by someone else is disabled.
- set: the generator applies the stored pending value at the target.
- test: the generator checks the target accepts it, retried with backoff
  within the test window. When the window runs out the target may already have
  changed, so the rotation stops for a person as "diverged"; nothing is rolled
  back that was not.
- finish: promote the pending version to current (the old current becomes
  previous) and drop cached reads of the secret in every broker process.

A failed step leaves `current` untouched, is retried with backoff up to the
attempt limit, then stops in `needs_attention`. Before set, test and finish
the machine checks that its version is still pending on the same current one:
when someone wrote a new current in between, the rotation is abandoned.

Every run of a step is audited before it runs and after (rotation/audit.py): a
step whose start cannot be recorded does not run, and its rotation keeps the
lease, to resume once it expires as it would after a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import structlog

from backends.base import SecretBackend, Stage, VersionInfo
from policies.model import Retire
from service.audit import AuditUnavailable
from service.clock import Clock
from service.errors import SecretNotFound
from service.rotation.audit import BROKER, Actor, RotationAudit
from service.rotation.events import Event, RotationEvents
from service.rotation.generators import RotationContext
from service.rotation.plans import Plan, Planner, describe
from service.rotation.records import (
    RUNNABLE,
    LeaseLost,
    Rotation,
    RotationStore,
    State,
    Step,
    holder,
    run_lease,
)
from service.rotation.retirement import Retirement
from service.rotation.settings import RotationSettings
from service.store.rotation_tables import rotation_secrets

log = structlog.get_logger(__name__)

IDEMPOTENCY_PREFIX = "rotation-"


class RotationMachine:
    """Runs rotations to their end, one step at a time, under a lease."""

    def __init__(
        self,
        store: RotationStore,
        planner: Planner,
        settings: RotationSettings,
        clock: Clock,
        events: RotationEvents,
        retirement: Retirement,
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
        self.retirement = retirement
        self.audit = audit
        self.owner = owner
        # Drops the secret's cached reads in every process.
        self._changed = changed

    def rotate(
        self,
        env: str,
        secret: str,
        *,
        trigger: str = "manual",
        no_grace: bool = False,
        actor: Actor = BROKER,
    ) -> Rotation:
        """Rotate now: open a rotation, or resume the one holding the secret.

        A person asking again resumes a rotation that needs attention from its
        failed step, with its attempts counted afresh. Raises InvalidRequest
        for a bad generator, NotFound for an unknown environment and
        AuditUnavailable (see `run`).
        """
        plan = self.planner.plan(env, secret)
        opened = self.store.open(
            env,
            secret,
            trigger=trigger,
            retire_policy=plan.retire.value,
            no_grace=no_grace,
        )
        assert opened is not None
        if opened.created:
            self.events.emit(Event.STARTED, env, secret, opened.rotation)
        else:
            self._nudge(opened.rotation, no_grace=no_grace)
        return self.run(opened.rotation.id, actor)

    def run(self, rotation_id: str, actor: Actor = BROKER) -> Rotation:
        """Run a rotation until it ends or must wait; answer its record.

        When another run (in this process or another) holds the lease, answer
        the record as it stands. Raises AuditUnavailable when a step could not
        be recorded as started: that step has not run, and the lease is kept
        until it expires.
        """
        lease = run_lease(self.owner)
        rotation = self.store.claim(rotation_id, lease, self.settings.lease_seconds)
        if rotation is None:
            return self._record(rotation_id)
        try:
            while (
                rotation.state in RUNNABLE
                and rotation.next_attempt_at <= self.clock.now()
            ):
                rotation = self._step(rotation, actor)
            if rotation.state is State.GRACE and rotation.no_grace:
                rotation = self.retirement.retire(rotation, actor)
        except LeaseLost:
            log.warning("rotation_lease_lost", rotation_id=rotation_id)
            return self._record(rotation_id)
        except AuditUnavailable:
            # Held like a crashed run: the lease expires, then any process
            # resumes the step, which nothing has touched yet.
            raise
        except Exception:
            self.store.release(rotation_id, lease)
            raise
        # Not in a `finally`: a process that dies keeps the lease until it
        # expires, and that is what the takeover by another process relies on.
        self.store.release(rotation_id, lease)
        return rotation

    def _step(self, rotation: Rotation, actor: Actor) -> Rotation:
        step = rotation.step
        self.audit.started(rotation, step, actor)
        rotation = self._save(rotation.replace(state=State.RUNNING))
        self.store.begin_step(rotation.id, step)
        advanced = self._run_step(rotation, step)
        self.audit.ended(advanced, step, actor)
        return advanced

    def _run_step(self, rotation: Rotation, step: Step) -> Rotation:
        try:
            plan = self.planner.plan(rotation.env, rotation.secret)
            if step is not Step.CREATE and not self._still_pending(rotation, plan):
                return self._abandon(rotation, plan)
            advanced = _STEPS[step](self, rotation, plan)
        except LeaseLost:
            raise
        except Exception as error:
            self.store.end_step(rotation.id, step, "failed", describe(error))
            return self._fail(rotation, step, error)
        outcome = "waiting" if advanced.step is step else "done"
        self.store.end_step(rotation.id, step, outcome)
        return advanced

    def _create(self, rotation: Rotation, plan: Plan) -> Rotation:
        backend, path = plan.location.backend, plan.location.path
        known = _versions(backend, path)
        current = _with_stage(known, Stage.CURRENT)
        minted = plan.generator.create(_context(rotation))
        info = backend.write(
            path,
            minted.value,
            binary=False,
            stage=Stage.PENDING,
            idempotency_key=IDEMPOTENCY_PREFIX + rotation.id,
        )
        for stray in known:
            is_stray = (
                Stage.PENDING in stray.stages and Stage.CURRENT not in stray.stages
            )
            if is_stray and stray.version != info.version:
                backend.set_enabled(path, stray.version, False)
                log.warning(
                    "rotation_stray_pending_disabled",
                    env=rotation.env,
                    secret=rotation.secret,
                    version=stray.version,
                )
        old = rotation.old_version or (current.version if current else None)
        return self._save(
            rotation.replace(
                step=Step.SET,
                old_version=old,
                new_version=info.version,
                credential_ref=minted.ref,
            )
        )

    def _set(self, rotation: Rotation, plan: Plan) -> Rotation:
        value = plan.location.backend.read(
            plan.location.path, version=rotation.new_version
        ).value
        plan.generator.apply(_context(rotation), value)
        return self._save(
            rotation.replace(
                step=Step.TEST, test_started_at=self.clock.now(), test_attempts=0
            )
        )

    def _test(self, rotation: Rotation, plan: Plan) -> Rotation:
        now = self.clock.now()
        started = rotation.test_started_at or now
        value = plan.location.backend.read(
            plan.location.path, version=rotation.new_version
        ).value
        try:
            accepted = plan.generator.test(_context(rotation), value)
        except Exception as error:
            # Refusals and errors alike mean "not yet" inside the window.
            log.info(
                "rotation_test_refused",
                rotation_id=rotation.id,
                error_type=type(error).__name__,
            )
            accepted = False
        if accepted:
            return self._save(rotation.replace(step=Step.FINISH))

        attempts = rotation.test_attempts + 1
        window = self.settings.test_window_seconds
        now = self.clock.now()  # the test itself may have taken a while
        if now - started >= window:
            return self._diverged(rotation.replace(test_attempts=attempts), window)
        delay = min(
            self.settings.test_backoff_max_seconds,
            self.settings.test_backoff_seconds * 2 ** (attempts - 1),
        )
        return self._save(
            rotation.replace(
                test_started_at=started,
                test_attempts=attempts,
                next_attempt_at=min(now + delay, started + window),
            )
        )

    def _finish(self, rotation: Rotation, plan: Plan) -> Rotation:
        backend, path = plan.location.backend, plan.location.path
        current = _with_stage(_versions(backend, path), Stage.CURRENT)
        assert rotation.new_version is not None
        if current is None or current.version != rotation.new_version:
            # TODO: the protocol's promote has no compare-and-set, so a write
            # landing between the check in `_step` and this call is overtaken;
            # the window is one backend round trip.
            backend.promote(path, rotation.new_version)
        self._changed(rotation.env, rotation.secret)
        now = self.clock.now()
        grace = 0.0 if rotation.no_grace else plan.grace
        if plan.retire is Retire.WHEN_UNUSED and not rotation.no_grace:
            grace = plan.max_grace
        finished = rotation.replace(
            state=State.GRACE if rotation.old_version else State.COMPLETED,
            step=Step.RETIRE if rotation.old_version else Step.FINISH,
            finished_at=now,
            grace_until=now + grace,
            failed_step=None,
            error=None,
        )
        saved = self._save(
            finished,
            secret={
                "current_version": rotation.new_version,
                "current_since": now,
                "failures_in_row": 0,
            },
            release_secret=True,
            others_in_grace_until=now,
        )
        self.events.emit(Event.SUCCEEDED, rotation.env, rotation.secret, saved)
        return saved

    def _fail(self, rotation: Rotation, step: Step, error: Exception) -> Rotation:
        attempts = rotation.attempts + 1
        message = describe(error)
        failed = rotation.replace(attempts=attempts, failed_step=step.value,
                                  error=message)  # fmt: skip
        if attempts >= self.settings.max_attempts:
            failed = failed.replace(state=State.NEEDS_ATTENTION)
        else:
            delay = min(
                self.settings.retry_backoff_max_seconds,
                self.settings.retry_backoff_seconds * 2 ** (attempts - 1),
            )
            failed = failed.replace(
                state=State.RETRYING, next_attempt_at=self.clock.now() + delay
            )
        saved = self._save(
            failed, secret={"failures_in_row": rotation_secrets.c.failures_in_row + 1}
        )
        self.events.emit(Event.FAILED, rotation.env, rotation.secret, saved)
        if saved.state is State.NEEDS_ATTENTION:
            self.events.emit(
                Event.NEEDS_ATTENTION, rotation.env, rotation.secret, saved
            )
        return saved

    def _diverged(self, rotation: Rotation, window: float) -> Rotation:
        message = (
            f"the target did not accept the new version within {window:g}s; it may "
            "already have changed (target/store diverged); current is unchanged"
        )
        saved = self._save(
            rotation.replace(
                state=State.NEEDS_ATTENTION,
                diverged=True,
                failed_step=Step.TEST.value,
                error=message,
                attempts=rotation.attempts + 1,
            ),
            secret={"failures_in_row": rotation_secrets.c.failures_in_row + 1},
        )
        self.store.end_step(rotation.id, Step.TEST, "failed", message)
        self.events.emit(Event.FAILED, rotation.env, rotation.secret, saved)
        self.events.emit(Event.NEEDS_ATTENTION, rotation.env, rotation.secret, saved)
        return saved

    def _abandon(self, rotation: Rotation, plan: Plan) -> Rotation:
        """Someone wrote a new current value meanwhile: step aside for it."""
        backend, path = plan.location.backend, plan.location.path
        if rotation.new_version is not None:
            known = {info.version: info for info in _versions(backend, path)}
            mine = known.get(rotation.new_version)
            if mine is not None and not mine.stages & {Stage.CURRENT, Stage.PREVIOUS}:
                backend.set_enabled(path, rotation.new_version, False)
        saved = self._save(rotation.replace(state=State.ABANDONED), release_secret=True)
        self._changed(rotation.env, rotation.secret)
        self.events.emit(Event.ABANDONED, rotation.env, rotation.secret, saved)
        return saved

    def _still_pending(self, rotation: Rotation, plan: Plan) -> bool:
        """Whether our version is still pending (or already current) on the
        current version this rotation started from."""
        known = _versions(plan.location.backend, plan.location.path)
        current = _with_stage(known, Stage.CURRENT)
        current_version = current.version if current else None
        if current_version is not None and current_version == rotation.new_version:
            return True
        mine = next((i for i in known if i.version == rotation.new_version), None)
        return (
            mine is not None
            and Stage.PENDING in mine.stages
            and current_version == rotation.old_version
        )

    def _nudge(self, rotation: Rotation, *, no_grace: bool = False) -> None:
        """A person asked to rotate: run the holding rotation now; an emergency
        one retires its previous version at once.

        While another run holds the rotation it goes on anyway; only an
        emergency's demand is passed on, since that run must know of it.
        """
        lease = run_lease(self.owner)
        claimed = self.store.claim(rotation.id, lease, self.settings.lease_seconds)
        if claimed is None:
            if no_grace:
                self.store.demand_no_grace(rotation.id)
            return
        changes: dict[str, object] = {"next_attempt_at": self.clock.now()}
        if no_grace:
            changes["no_grace"] = True
        if claimed.state is State.NEEDS_ATTENTION:
            changes.update(state=State.RUNNING, attempts=0, test_attempts=0)
            if claimed.step is Step.TEST:
                changes["test_started_at"] = None
        self._save(claimed.replace(**changes))
        self.store.release(rotation.id, lease)

    def _save(
        self,
        rotation: Rotation,
        *,
        secret: Mapping[str, Any] | None = None,
        release_secret: bool = False,
        others_in_grace_until: float | None = None,
    ) -> Rotation:
        return self.store.save(
            rotation,
            holder(rotation),
            self.settings.lease_seconds,
            secret=secret,
            release_secret=release_secret,
            others_in_grace_until=others_in_grace_until,
        )

    def _record(self, rotation_id: str) -> Rotation:
        found = self.store.get(rotation_id)
        if found is None:
            raise SecretNotFound("no rotation by that id")
        return found


def _context(rotation: Rotation) -> RotationContext:
    return RotationContext(rotation.env, rotation.secret, rotation.id)


def _versions(backend: SecretBackend, path: str) -> list[VersionInfo]:
    try:
        return backend.versions(path)
    except SecretNotFound:
        return []


def _is_stray(info: VersionInfo) -> bool:
    return Stage.PENDING in info.stages and Stage.CURRENT not in info.stages


def _with_stage(known: list[VersionInfo], stage: Stage) -> VersionInfo | None:
    return next((info for info in known if stage in info.stages), None)


_STEPS = {
    Step.CREATE: RotationMachine._create,
    Step.SET: RotationMachine._set,
    Step.TEST: RotationMachine._test,
    Step.FINISH: RotationMachine._finish,
}
