"""Break-glass for a compromised service: shut it out, then find what it saw.

`respond` is the whole response for one service:

1. the record is opened, before anything changes;
2. the service is disabled and every token it holds revoked (a watermark the
   revocation feed carries to every process), and each of its client
   credentials is revoked, so that enabling it later needs a new one;
3. every process is told, flushes its reads and adds the service's reads
   within the window to the report (service/compromise/containment.py);
4. after `settle_seconds`, long enough for the others' reads to arrive, the
   report's secrets and versions are final; with `rotate`, every secret in it
   is rotated with no grace, in rate-limited batches with one result each;
5. the record is finished with what happened, and answered.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from starlette.concurrency import run_in_threadpool

from service.audit import AuditLog
from service.clock import Clock, utc
from service.compromise.containment import Containment, Context
from service.compromise.exposure import Exposure
from service.compromise.records import Compromise, CompromiseStore, Kind, State
from service.credentials import CredentialStore
from service.environment import Environment
from service.errors import Conflict, NotFound
from service.revocations import Revocations
from service.rotation.audit import Actor
from service.rotation.bulk import BulkResult, rotate_in_batches
from service.rotation.records import Rotation
from service.rotation.records import State as RotationState
from service.rotation.service import RotationService
from service.tokens import Principal

log = structlog.get_logger(__name__)

TRIGGER = "compromise"
_STATUS = {
    RotationState.COMPLETED: "rotated",
    RotationState.NEEDS_ATTENTION: "failed",
    RotationState.ABANDONED: "failed",
}


class ServiceCompromise:
    """The break-glass response to a compromised service, in every environment."""

    def __init__(
        self,
        store: CompromiseStore,
        containment: Containment,
        exposure: Exposure,
        revocations: Revocations,
        credentials: CredentialStore,
        rotation: RotationService,
        audit: AuditLog,
        clock: Clock,
        *,
        settle_seconds: float,
    ) -> None:
        self._store = store
        self._containment = containment
        self._exposure = exposure
        self._revocations = revocations
        self._credentials = credentials
        self._rotation = rotation
        self._audit = audit
        self._clock = clock
        self._settle_seconds = settle_seconds

    async def respond(
        self,
        environment: Environment,
        admin: Principal,
        service: str,
        *,
        window_seconds: float,
        reason: str,
        rotate: bool,
        request_id: str | None = None,
        source: str | None = None,
    ) -> Compromise:
        """Shut `service` out and report (and with `rotate`, rotate) what it read
        in the last `window_seconds`.

        Raises Conflict when the admin names its own service, NotFound for a
        service that no policy names and that never had a credential (a typo
        must not look like a break-glass done), AuditUnavailable.
        """
        if service == admin.service:
            raise Conflict("an admin cannot declare its own service compromised")
        known = environment.policy.has_service(service) or await run_in_threadpool(
            self._credentials.ever_issued, environment.name, service
        )
        if not known:
            raise NotFound("no policy names that service and it never had a credential")
        context = Context(admin.service, request_id, source)
        opened = await run_in_threadpool(
            self._store.open, environment.name, Kind.SERVICE, service,
            reason=reason, actor=admin.service,
            since=self._clock.now() - window_seconds,
        )  # fmt: skip
        log.warning("service_compromised", env=environment.name, service=service,
                    compromise_id=opened.id, actor=admin.service)  # fmt: skip
        shut = await run_in_threadpool(self._shut_out, opened, context)

        self._containment.claim(opened.id)
        announced = await run_in_threadpool(self._store.announce, opened)
        await run_in_threadpool(self._containment.contain, announced, context)
        # The other processes add the reads only they had; then the list of
        # what the service saw is complete enough to act on.
        await asyncio.sleep(self._settle_seconds)

        detail: dict[str, Any] = {**shut, "window_seconds": window_seconds}
        if rotate:
            reads = await run_in_threadpool(self._exposure.reads, opened.id)
            names = sorted({read.secret for read in reads})
            actor = Actor(admin.service, request_id, source)
            results = await self._rotate_all(environment, names, actor)
            detail["rotations"] = [_result(result) for result in results]
        return await run_in_threadpool(
            self._store.finish, announced, State.CONTAINED, **detail
        )

    def _shut_out(self, compromise: Compromise, context: Context) -> dict[str, Any]:
        env, service = compromise.env, compromise.subject
        reason = f"compromise {compromise.id}: {compromise.reason}"
        request = {"request_id": context.request_id, "source": context.source}
        revoked = self._revocations.revoke_service(
            env, service, True, reason=reason, actor=context.actor, **request
        )
        withdrawn = []
        for credential in self._credentials.list(env, service):
            self._credentials.revoke(env, service, credential.id)
            self._audit.record(
                env, "credential.revoke", actor=context.actor, target=service,
                version=credential.id, reason=reason, compromise_id=compromise.id,
                request_id=context.request_id, source=context.source,
            )  # fmt: skip
            withdrawn.append(credential.id)
        return {
            "disabled": revoked.disabled,
            "revoked_before": utc(revoked.revoked_at).isoformat(),
            "credentials_revoked": withdrawn,
        }

    async def _rotate_all(
        self, environment: Environment, names: list[str], actor: Actor
    ) -> list[BulkResult]:
        machine = self._rotation.machine
        settings = self._rotation.settings

        async def one(name: str) -> Rotation:
            return await run_in_threadpool(
                machine.rotate, environment.name, name, trigger=TRIGGER,
                no_grace=True, actor=actor,
            )  # fmt: skip

        return await rotate_in_batches(
            names,
            one,
            batch_size=settings.bulk_batch_size,
            per_second=settings.bulk_per_second,
            backend_of=lambda name: environment.locate(name).backend.name,
        )


def _result(result: BulkResult) -> dict[str, Any]:
    """One secret's rotation as the report keeps it."""
    if result.error is not None:
        error = result.error
        return {"secret": result.name, "status": "error", "error": error.code,
                "error_description": error.message}  # fmt: skip
    assert result.rotation is not None
    rotation = result.rotation
    return {
        "secret": result.name,
        "status": _STATUS.get(rotation.state, "in_progress"),
        "rotation_id": rotation.id,
        "state": rotation.state.value,
        "version": rotation.new_version,
        "retired_version": rotation.old_version,
        "error_description": rotation.error,
    }
