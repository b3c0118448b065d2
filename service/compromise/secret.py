"""A compromised version of a secret: replaced and disabled at once, its readers
revoked, everyone told.

`respond` is the whole response, for one version (the current one, or any
other still known):

1. the record is opened, before anything changes;
2. the version stops working: when it is current, an emergency rotation makes
   a new one and retires it with no grace (the generator revokes it upstream,
   then the backend disables it; case C03); when it is not, it is revoked
   upstream and disabled directly;
3. every process is told (the caches drop the secret, the tokens that read it
   are revoked: service/compromise/containment.py), this one first;
4. the record is finished with what happened, and answered.

A rotation that cannot finish now does not hold up the rest: the tokens are
revoked all the same, the record says `rotating` (the worker finishes it and
retires the version the moment it can) or `failed` (it needs a person). A
rotation of the secret already running (another request, in this process or
another, or the schedule) is joined, not raced: it is told to skip its grace.
A response that fails half-way is kept as `failed`, never left `responding`.
Blocking: from the event loop, run it in a thread.
"""

from __future__ import annotations

from typing import Any

import structlog

from backends.base import Stage, VersionInfo
from policies.scopes import Action
from service.audit import AuditLog
from service.clock import Clock
from service.compromise.containment import Containment, Context
from service.compromise.records import Compromise, CompromiseStore, Kind, State
from service.compromise.report import secret_state
from service.environment import Environment
from service.errors import (
    BackendUnavailable,
    SecretNotFound,
    TokenBrokerError,
    VersionGone,
)
from service.rotation.audit import Actor
from service.rotation.generators import RotationContext
from service.rotation.plans import describe
from service.rotation.records import State as RotationState
from service.rotation.service import RotationService
from service.secret_access import SecretAccess, store_unavailable
from service.tokens import Principal

log = structlog.get_logger(__name__)

CURRENT = "current"
TRIGGER = "compromise"
# A rotation that held the secret may be abandoned under the emergency one
# (someone wrote a new current meanwhile): then one more is opened.
ROTATE_ATTEMPTS = 2


class SecretCompromise:
    """The response to a compromised secret version, in every environment."""

    def __init__(
        self,
        store: CompromiseStore,
        containment: Containment,
        rotation: RotationService,
        secrets: SecretAccess,
        audit: AuditLog,
        clock: Clock,
    ) -> None:
        self._store = store
        self._containment = containment
        self._rotation = rotation
        self._secrets = secrets
        self._audit = audit
        self._clock = clock

    def respond(
        self,
        environment: Environment,
        principal: Principal,
        name: str,
        version: str,
        *,
        reason: str,
        request_id: str | None = None,
        source: str | None = None,
    ) -> Compromise:
        """Respond to a compromise of `version` (or `current`) of `name`.

        Raises PermissionDenied without `secrets:revoke` on the secret,
        SecretNotFound for a version the store does not know, AuditUnavailable.
        """
        self._secrets.authorize(environment, principal, Action.REVOKE, name)
        compromised = self._version(environment, name, version)
        opened = self._store.open(
            environment.name, Kind.SECRET, name, reason=reason,
            actor=principal.service, version=compromised.version,
        )  # fmt: skip
        is_current = Stage.CURRENT in compromised.stages
        log.warning(
            "secret_compromised",
            env=environment.name,
            secret=name,
            version=compromised.version,
            current=is_current,
            compromise_id=opened.id,
            actor=principal.service,
        )
        actor = Actor(principal.service, request_id, source)
        try:
            if is_current:
                state, detail = self._rotate(opened, actor)
            else:
                state, detail = self._disable(opened, actor)

            self._containment.claim(opened.id)
            announced = self._store.announce(opened)
            self._containment.contain(
                announced, Context(principal.service, request_id, source)
            )
        except Exception as error:
            # Kept as `failed`, never left `responding`: a person must look.
            self._store.finish(opened, State.FAILED, error=describe(error))
            raise
        return self._store.finish(announced, state, **detail)

    def _version(
        self, environment: Environment, name: str, version: str
    ) -> VersionInfo:
        """The version meant. Raises SecretNotFound (naming neither the store's
        path nor the version asked for) and BackendUnavailable."""
        location = environment.locate(name)
        try:
            known = location.backend.versions(location.path)
        except SecretNotFound:
            known = []
        except BackendUnavailable as error:
            raise store_unavailable(
                environment.name, location.backend.name, error
            ) from error
        for info in known:
            if (version == CURRENT and Stage.CURRENT in info.stages) or (
                info.version == version
            ):
                return info
        raise SecretNotFound("the secret has no such version")

    def _rotate(
        self, compromise: Compromise, actor: Actor
    ) -> tuple[State, dict[str, Any]]:
        """Replace the current version with no grace; the previous one goes.

        A rotation of the secret already under way is joined: it is told to
        skip the grace, and the response stands as that rotation does. When
        another rotation replaced the version first, it is disabled as a
        version that is not current.
        """
        machine = self._rotation.machine
        try:
            for _ in range(ROTATE_ATTEMPTS):
                rotation = machine.rotate(
                    compromise.env, compromise.subject, trigger=TRIGGER,
                    no_grace=True, actor=actor,
                )  # fmt: skip
                if rotation.state is not RotationState.ABANDONED:
                    break
            if rotation.old_version != compromise.version and not self._current(
                compromise
            ):
                return self._disable(compromise, actor)
        except Exception as error:
            # The tokens must still be revoked: the response goes on without
            # the rotation, which a person has to look at.
            log.error(
                "compromise_rotation_failed",
                env=compromise.env,
                secret=compromise.subject,
                compromise_id=compromise.id,
                error=_code(error),
            )
            return State.FAILED, {"rotation": None, "error": describe(error)}
        state = secret_state(rotation, compromise.version)
        retired = state is State.CONTAINED
        if retired:
            log.warning(
                "rotation_grace_skipped",
                env=compromise.env,
                secret=compromise.subject,
                version=compromise.version,
                rotation_id=rotation.id,
                compromise_id=compromise.id,
            )
        return state, {
            "rotation": rotation.id,
            "new_version": rotation.new_version,
            "current_version": rotation.new_version if retired else None,
            "version_disabled": retired,
        }

    def _current(self, compromise: Compromise) -> bool:
        """Whether the compromised version is still the secret's current one."""
        location = self._rotation.planner.plan(
            compromise.env, compromise.subject
        ).location
        return any(
            info.version == compromise.version and Stage.CURRENT in info.stages
            for info in location.backend.versions(location.path)
        )

    def _disable(
        self, compromise: Compromise, actor: Actor
    ) -> tuple[State, dict[str, Any]]:
        """Revoke a version that is not current upstream, then disable it."""
        env, name = compromise.env, compromise.subject
        assert compromise.version is not None
        plan = self._rotation.planner.plan(env, name)
        backend, path = plan.location.backend, plan.location.path
        try:
            try:
                value = backend.read(path, version=compromise.version).value
            except VersionGone:
                value = None
            if value is not None:
                maker = self._rotation.store.created_version(
                    env, name, compromise.version
                )
                made_by = maker.id if maker else compromise.id
                plan.generator.revoke(
                    RotationContext(env, name, made_by),
                    value,
                    maker.credential_ref if maker else None,
                )
            backend.set_enabled(path, compromise.version, False)
        except Exception as error:
            # Whatever failed (the store, or a generator plugin's own error),
            # the readers' tokens are still revoked by the caller.
            log.error("compromise_disable_failed", env=env, secret=name,
                      compromise_id=compromise.id, error=_code(error))  # fmt: skip
            return State.FAILED, {"version_disabled": False, "error": describe(error)}
        self._audit.record(
            env, "secret.disable", actor=actor.name, target=name,
            version=compromise.version, request_id=actor.request_id,
            source=actor.source, compromise_id=compromise.id,
            revoked_upstream=value is not None,
        )  # fmt: skip
        log.warning(
            "secret_version_disabled", env=env, secret=name,
            version=compromise.version, compromise_id=compromise.id,
        )  # fmt: skip
        current = next(
            (i.version for i in backend.versions(path) if Stage.CURRENT in i.stages),
            None,
        )
        return State.CONTAINED, {
            "rotation": None,
            "new_version": None,
            "current_version": current,
            "version_disabled": True,
        }


def _code(error: Exception) -> str:
    """The broker's code for `error`, or only its type: never its message."""
    return error.code if isinstance(error, TokenBrokerError) else type(error).__name__
