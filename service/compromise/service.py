"""The compromise response: the one object the broker and the HTTP API talk to.

It assembles the parts for a broker process, checks who may read a report,
and sends every response to the webhooks as a CloudEvent
`tokenbroker.compromise.secret` or `.service` (names, versions and counts).
What each response does is in service/compromise/secret.py and breakglass.py;
what every process does about it, in containment.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from policies.scopes import Action
from service.audit import AuditLog
from service.clock import Clock
from service.compromise.breakglass import ServiceCompromise
from service.compromise.containment import Containment
from service.compromise.exposure import Exposure
from service.compromise.records import Compromise, CompromiseStore, Kind
from service.compromise.report import Reports
from service.compromise.secret import SecretCompromise
from service.credentials import CredentialStore
from service.environment import Environment
from service.errors import NotFound
from service.revocation_feed import Chore, RevocationFeed, RevocationSettings
from service.revocations import Revocations
from service.rotation.service import RotationService
from service.secret_access import SecretAccess
from service.tokens import Principal

log = structlog.get_logger(__name__)

Publisher = Callable[[dict[str, Any]], None]
# How long a break-glass waits for the other processes' reads: two polls.
SETTLE_POLLS = 2


class CompromiseResponse:
    """Secret and service compromise for every environment of one process."""

    def __init__(
        self,
        *,
        engine: Engine,
        clock: Clock,
        environments: Mapping[str, Environment],
        revocations: Revocations,
        rotation: RotationService,
        secrets: SecretAccess,
        credentials: CredentialStore,
        audit: AuditLog,
        settings: RevocationSettings,
        source: str,
    ) -> None:
        self.store = CompromiseStore(engine, clock)
        self.exposure = Exposure(engine, clock)
        self.consumers = rotation.consumers
        self.containment = Containment(
            self.store, self.exposure, rotation.consumers, revocations, secrets,
            clock, settings, envs=environments,
        )  # fmt: skip
        self.secret = SecretCompromise(
            self.store, self.containment, rotation, secrets, audit, clock
        )
        self.service = ServiceCompromise(
            self.store, self.containment, self.exposure, revocations, credentials,
            rotation, audit, clock,
            settle_seconds=SETTLE_POLLS * settings.poll_seconds,
        )  # fmt: skip
        self.reports = Reports(self.exposure, rotation.store)
        self.publish: Publisher = rotation.webhooks.publish
        self._secrets = secrets
        self._clock = clock
        self._source = source
        self._prune_seconds = settings.prune_seconds

    def attach(self, feed: RevocationFeed) -> None:
        """Take part in every compromise announced on the feed's channel."""
        self.containment.attach(feed)
        feed.chores.append(
            Chore("token_reads", self._prune_seconds, self.consumers.tokens.prune)
        )

    async def compromise_secret(
        self,
        environment: Environment,
        principal: Principal,
        name: str,
        version: str,
        *,
        reason: str,
        request_id: str | None = None,
        source: str | None = None,
    ) -> dict[str, Any]:
        """Respond to a compromised secret version; answer the report."""
        done = await run_in_threadpool(
            self.secret.respond, environment, principal, name, version,
            reason=reason, request_id=request_id, source=source,
        )  # fmt: skip
        return await self._answer(done)

    async def compromise_service(
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
    ) -> dict[str, Any]:
        """Break-glass for a service; answer the report."""
        done = await self.service.respond(
            environment, admin, service, window_seconds=window_seconds,
            reason=reason, rotate=rotate, request_id=request_id, source=source,
        )  # fmt: skip
        return await self._answer(done)

    async def report(
        self, environment: Environment, principal: Principal, compromise_id: str
    ) -> dict[str, Any]:
        """A kept report; NotFound unless the principal may see it."""
        found = await run_in_threadpool(
            self.store.get, environment.name, compromise_id[:36]
        )
        if found is None or not self._may_see(environment, principal, found):
            raise NotFound("no compromise report by that id")
        return await run_in_threadpool(self.reports.view, found)

    async def latest(
        self,
        environment: Environment,
        principal: Principal,
        *,
        secret: str | None,
        service: str | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """The newest reports the principal may see, newest first."""
        kind = Kind.SECRET if secret else Kind.SERVICE if service else None
        found = await run_in_threadpool(
            lambda: self.store.latest(
                environment.name, kind=kind, subject=secret or service, limit=limit
            )
        )
        visible = [c for c in found if self._may_see(environment, principal, c)]
        return await run_in_threadpool(
            lambda: [self.reports.summary(compromise) for compromise in visible]
        )

    def _may_see(
        self, environment: Environment, principal: Principal, compromise: Compromise
    ) -> bool:
        admin = (
            principal.admin
            and environment.policy.explain(principal.service, "admin").allowed
        )
        if admin or compromise.kind is Kind.SERVICE:
            return admin
        return self._secrets.allows(
            environment, principal, Action.REVOKE, compromise.subject
        )

    async def _answer(self, compromise: Compromise) -> dict[str, Any]:
        view = await run_in_threadpool(self.reports.view, compromise)
        self.publish(self._cloud_event(compromise, view))
        log.info(
            "compromise_reported",
            env=compromise.env,
            compromise_id=compromise.id,
            kind=compromise.kind.value,
            subject=compromise.subject,
            state=view["state"],
            services=len(view.get("services", [])),
            tokens=len(view.get("tokens_revoked", [])),
            reads=len(view.get("reads", [])),
        )
        return view

    def _cloud_event(
        self, compromise: Compromise, view: dict[str, Any]
    ) -> dict[str, Any]:
        env = compromise.env
        counted = ("services", "tokens_revoked", "services_revoked", "reads",
                   "rotations", "credentials_revoked")  # fmt: skip
        data = {
            key: value
            for key, value in view.items()
            if key not in counted and not isinstance(value, dict | list)
        }
        data.update({key: len(view[key]) for key in counted if key in view})
        return {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": f"{self._source}/v1/{env}",
            "type": f"tokenbroker.compromise.{compromise.kind.value}",
            "subject": compromise.subject,
            "time": datetime.fromtimestamp(self._clock.now(), tz=UTC).isoformat(),
            "datacontenttype": "application/json",
            "tokenbrokerenv": env,
            "data": data,
        }
