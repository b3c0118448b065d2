"""The rotation service: the one object the broker and the HTTP API talk to.

It assembles the rotation parts for a broker process, checks authorization
for the API (a rotation is read or started only by a principal whose token and
policy allow it on the secret), and starts and stops the background work.

A finish, an abandonment and a retirement drop the secret's cached versions in
every broker process (service/secret_changes.py), so no process serves the
old current version for longer than the revocation feed's bound (case C07).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import structlog
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from policies.match import Pattern
from policies.scopes import Action
from service.audit import AuditLog
from service.clock import Clock
from service.environment import Environment
from service.errors import (
    BackendError,
    BackendUnavailable,
    InvalidRequest,
    NotFound,
    TokenBrokerError,
)
from service.rotation.audit import Actor, RotationAudit
from service.rotation.bulk import BulkResult, rotate_in_batches
from service.rotation.consumers import Consumer, ConsumerTracker
from service.rotation.events import RotationEvents
from service.rotation.generators import GeneratorRegistry
from service.rotation.machine import RotationMachine
from service.rotation.metrics import RotationMetrics
from service.rotation.plans import Planner
from service.rotation.records import Rotation, RotationStore, StepRecord
from service.rotation.retirement import Retirement
from service.rotation.scheduler import Scheduler
from service.rotation.settings import RotationSettings, WebhookTarget
from service.rotation.webhooks import WebhookDispatcher
from service.rotation.worker import RotationWorker
from service.secret_access import SecretAccess, store_unavailable
from service.secret_changes import Cause
from service.tokens import Principal

log = structlog.get_logger(__name__)

LIST_PAGE_SIZE = 500
WEBHOOK_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class RotationView:
    """A rotation record with its step log, as the API shows it."""

    rotation: Rotation
    steps: list[StepRecord]


class RotationService:
    """Rotation for every environment of one broker process."""

    def __init__(
        self,
        *,
        engine: Engine,
        environments: Mapping[str, Environment],
        settings: RotationSettings,
        webhooks: Sequence[WebhookTarget],
        clock: Clock,
        registry: CollectorRegistry,
        secrets: SecretAccess,
        source: str,
        audit: AuditLog,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.secrets = secrets
        self.owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.store = RotationStore(engine, clock)
        self.consumers = ConsumerTracker(engine, clock)
        self.generators = GeneratorRegistry(settings)
        self.planner = Planner(environments, self.generators, settings)
        self.metrics = RotationMetrics(registry, clock, self.store.all_secrets)
        self.webhooks = WebhookDispatcher(webhooks, clock)
        self.events = RotationEvents(source, clock, self.metrics, self.webhooks.publish)
        self.audit = RotationAudit(audit)
        self.retirement = Retirement(
            self.store, self.planner, settings, clock, self.events, self.consumers,
            self.audit, owner=self.owner,
            changed=lambda env, name: secrets.changed(env, name, Cause.RETIREMENT),
        )  # fmt: skip
        self.machine = RotationMachine(
            self.store, self.planner, settings, clock, self.events, self.retirement,
            self.audit, owner=self.owner,
            changed=lambda env, name: secrets.changed(env, name, Cause.ROTATION),
        )  # fmt: skip
        self.scheduler = Scheduler(
            self.store, environments, settings, clock, self.events
        )
        self.worker = RotationWorker(
            self.store, self.scheduler, self.machine, self.retirement,
            self.consumers, settings, clock,
        )  # fmt: skip
        secrets.read_observers.append(self.consumers.record)

    def start(self) -> None:
        """Start the background work, unless `rotation.enabled` is false."""
        if self.settings.enabled:
            self.worker.start()
        self.webhooks.start(WEBHOOK_INTERVAL_SECONDS)

    def stop(self) -> None:
        self.worker.stop()
        self.webhooks.stop()
        self.generators.close()

    async def rotate(
        self,
        environment: Environment,
        principal: Principal,
        name: str,
        *,
        no_grace: bool = False,
        request_id: str | None = None,
        source: str | None = None,
    ) -> Rotation:
        """Rotate a secret now (see `RotationMachine.rotate`).

        `no_grace` retires the previous version at once: the seam for an
        emergency (compromise) response. The steps run now are audited as the
        principal's, under `request_id` from `source`. Raises PermissionDenied
        first, and AuditUnavailable.
        """
        self.secrets.authorize(environment, principal, Action.ROTATE, name)
        rotation = await run_in_threadpool(
            self.machine.rotate,
            environment.name,
            name,
            no_grace=no_grace,
            actor=Actor(principal.service, request_id, source),
        )
        log.info(
            "rotation_requested",
            env=environment.name,
            secret=name,
            service=principal.service,
            rotation_id=rotation.id,
            state=rotation.state.value,
        )
        return rotation

    async def view(
        self, environment: Environment, principal: Principal, rotation_id: str
    ) -> RotationView:
        """A rotation with its steps; NotFound unless the principal may see it."""
        rotation = await run_in_threadpool(self.store.get, rotation_id[:64])
        if rotation is None or rotation.env != environment.name or not any(
            self.secrets.allows(environment, principal, action, rotation.secret)
            for action in (Action.ROTATE, Action.READ)
        ):  # fmt: skip
            raise NotFound("no rotation by that id")
        steps = await run_in_threadpool(self.store.steps, rotation.id)
        return RotationView(rotation, steps)

    async def consumers_of(
        self, environment: Environment, principal: Principal, name: str
    ) -> list[Consumer]:
        """Who read which version of a secret. Raises PermissionDenied first."""
        self.secrets.authorize(environment, principal, Action.READ, name)
        return await run_in_threadpool(self.consumers.consumers, environment.name, name)

    async def bulk(
        self,
        environment: Environment,
        principal: Principal,
        pattern: str,
        *,
        request_id: str | None = None,
        source: str | None = None,
    ) -> list[BulkResult]:
        """Rotate every secret the pattern matches that the principal may rotate.

        Secrets the principal may not rotate are left out, as in a listing.
        Raises InvalidRequest for a bad pattern or too many secrets.
        """
        try:
            parsed = Pattern.parse(pattern)
        except ValueError as error:
            raise InvalidRequest(f"pattern: {error}") from None
        names = await run_in_threadpool(self._matching, environment, parsed)
        names = [
            name
            for name in names
            if self.secrets.allows(environment, principal, Action.ROTATE, name)
        ]
        if len(names) > self.settings.bulk_max_secrets:
            raise InvalidRequest(
                f"the pattern matches {len(names)} secrets; the limit is "
                f"{self.settings.bulk_max_secrets}"
            )

        async def one(name: str) -> Rotation:
            return await self.rotate(
                environment, principal, name, request_id=request_id, source=source
            )

        # Paced by the process's monotonic clock, which is what `sleep` waits on:
        # a rate is about elapsed time, not the broker's (movable) clock.
        return await rotate_in_batches(
            names,
            one,
            batch_size=self.settings.bulk_batch_size,
            per_second=self.settings.bulk_per_second,
            backend_of=lambda name: environment.locate(name).backend.name,
        )

    def _matching(self, environment: Environment, pattern: Pattern) -> list[str]:
        """Declared secrets and default-backend secrets that match, sorted.

        Raises the backend's error when its listing fails: a rotation of "every
        match" must not quietly become a rotation of the first pages' matches.
        """
        found = {
            name for name in environment.policy.declarations() if pattern.matches(name)
        }
        prefix = str(pattern).split("*", 1)[0]
        backend = environment.default_backend
        token: str | None = None
        seen: set[str] = set()
        while True:
            try:
                page = backend.list(prefix, page_size=LIST_PAGE_SIZE, page_token=token)
            except BackendUnavailable as error:
                raise store_unavailable(
                    environment.name, backend.name, error
                ) from error
            except TokenBrokerError as error:
                log.warning(
                    "rotation_bulk_listing_failed",
                    env=environment.name,
                    backend=backend.name,
                    error=error.code,
                )
                raise
            found.update(s.path for s in page.items if pattern.matches(s.path))
            if page.next_token is None:
                return sorted(found)
            if page.next_token in seen:
                raise BackendError(
                    f"the secret store {backend.name!r} repeated a page of its "
                    "listing; the bulk rotation was stopped before it started"
                )
            seen.add(page.next_token)
            token = page.next_token
