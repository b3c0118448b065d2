"""Audit records of HTTP requests: who, what, from where, under which request id.

Reads call `audit_request` once they have read and before they answer. Every
change goes through `audited_change`, which commits a record of the intent
before anything changes and a record of the outcome after. The error handlers
call `audit_failure` for every refusal (401, 403, 429; an anonymous caller's
within a rate, service/refusals.py) and for every other failure of a caller
that has identified itself. All wait for the commit, so an answer never leaves
before its record is stored; when the audit log cannot record, they raise
AuditUnavailable and the caller gets 503 instead.

Requests leave their part of the story in `request.state`: `principal` (a
verified token), `client_id` (who tried the token endpoint), `claimed` (what a
refused token claimed about itself, unverified) and `audit_action`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any, Final

import structlog
from fastapi import Request

from service.audit import AuditUnavailable
from service.tokens import Principal

log = structlog.get_logger(__name__)

ACTIONS: Final = {
    ("POST", "/v1/{env}/token"): "token.issue",
    ("GET", "/v1/{env}/secrets"): "secret.list",
    ("GET", "/v1/{env}/secrets/{name:path}"): "secret.read",
    ("PUT", "/v1/{env}/secrets/{name:path}"): "secret.write",
    ("POST", "/v1/{env}/secrets/{name:path}/rotate"): "rotation.request",
    ("POST", "/v1/{env}/secrets/{name:path}/refresh"): "secret.refresh",
    ("POST", "/v1/{env}/secrets/{name:path}/compromise"): "secret.compromise",
    ("POST", "/v1/{env}/rotations"): "rotation.bulk",
    ("POST", "/v1/{env}/revoke"): "token.revoke",
    ("POST", "/v1/{env}/introspect"): "token.introspect",
    ("POST", "/v1/{env}/tokens/{jti}/revoke"): "token.revoke",
    ("POST", "/v1/{env}/services/{service}/revoke"): "service.revoke",
    ("POST", "/v1/{env}/services/{service}/enable"): "service.enable",
    ("POST", "/v1/{env}/services/{service}/compromise"): "service.compromise",
    ("GET", "/v1/{env}/compromises"): "compromise.list",
    ("GET", "/v1/{env}/compromises/{compromise_id}"): "compromise.read",
    ("GET", "/v1/{env}/keys"): "key.list",
    ("POST", "/v1/{env}/keys/rotate"): "key.rotate",
    ("POST", "/v1/{env}/keys/{kid}/revoke"): "key.revoke",
    ("POST", "/v1/{env}/services/{service}/credentials"): "credential.create",
    ("DELETE", "/v1/{env}/services/{service}/credentials/{credential_id}"): (
        "credential.revoke"
    ),
    ("PUT", "/v1/{env}/policies/{name}"): "policy.apply",
    ("DELETE", "/v1/{env}/policies/{name}"): "policy.delete",
    ("GET", "/v1/{env}/audit"): "audit.export",
}
OUTCOMES: Final = {401: "refused", 403: "denied", 429: "throttled"}
REFUSALS: Final = frozenset(OUTCOMES)
REQUESTED: Final = "requested"


class Change:
    """What a change adds to its outcome record (the version it wrote, ...)."""

    __slots__ = ("fields",)

    def __init__(self) -> None:
        self.fields: dict[str, Any] = {}

    def record(self, **fields: Any) -> None:
        self.fields.update(fields)


@asynccontextmanager
async def audited_change(
    request: Request, action: str, *, own_outcome: bool = False, **fields: Any
) -> AsyncIterator[Change]:
    """Commit the intent of a change, let the block make it, record the outcome.

    The intent (outcome `requested`, with `fields`) is committed before the
    block runs: when it cannot be, AuditUnavailable (503) is raised and nothing
    has changed. A block that raises is recorded by the error handlers, as any
    failure is. After the block, the outcome (`ok`, with `fields` and what the
    block gave `Change.record`) is recorded, unless the operation records its
    own (`own_outcome`, as Revocations does).
    """
    await audit_request(request, action, REQUESTED, **fields)
    change = Change()
    yield change
    if own_outcome:
        return
    outcome = fields | change.fields
    try:
        await audit_request(request, action, "ok", **outcome)
    except AuditUnavailable:
        # The change has happened and cannot be taken back unrecorded either, so
        # the caller gets its real answer rather than a 503 that would hide it: a
        # client secret is shown only once, and a retried write writes again.
        # The chain holds the intent under this request id, which an auditor
        # reads as "may have happened"; the outcome follows once the store takes
        # records again, and this line tells the operator meanwhile.
        log.error(
            "audit_outcome_unrecorded",
            env=request.path_params.get("env"),
            action=action,
            target=outcome.get("target"),
            version=change.fields.get("version"),
        )
        # Once closed, the log defers nothing: the ERROR line is the evidence.
        with suppress(AuditUnavailable):
            request.app.state.broker.audit.defer(
                request.path_params["env"], action, **_request_fields(request, outcome)
            )


async def audit_request(
    request: Request, action: str, outcome: str = "ok", **fields: Any
) -> None:
    """Record one event of this request and wait until it is committed.

    The actor and token id default to the verified principal's. `fields` as
    in `AuditLog.record`. Raises AuditUnavailable.
    """
    await request.app.state.broker.audit.submit(
        request.path_params["env"], action, outcome, **_request_fields(request, fields)
    )


def _request_fields(request: Request, fields: dict[str, Any]) -> dict[str, Any]:
    """`fields` with who asked (the verified principal's name and token id,
    unless given), the request id and the source address."""
    principal = _principal(request)
    found = dict(fields)
    if principal is not None:
        found.setdefault("actor", principal.service)
        found.setdefault("jti", principal.jti)
    return found | {
        "request_id": request.scope.get("request_id"),
        "source": source_address(request),
    }


async def audit_failure(request: Request, status: int, code: str) -> None:
    """Record a refused request, or a failed one whose caller is known.

    Requests outside an environment served here, and anonymous requests that
    fail for other reasons (a malformed body), are not recorded; anonymous
    refusals beyond their rate are counted into a summary instead. Raises
    AuditUnavailable.
    """
    broker = request.app.state.broker
    env = request.path_params.get("env")
    if env is None or env not in broker.environments:
        return
    principal = _principal(request)
    actor = principal.service if principal else _state(request, "client_id")
    if status not in REFUSALS and actor is None:
        return
    route = request.scope.get("route")
    template = str(getattr(route, "path", ""))
    claimed: dict[str, Any] = _state(request, "claimed") or {}
    action = _state(request, "audit_action") or ACTIONS.get(
        (request.method, template), "request"
    )
    known = actor is not None or claimed.get("claimed_env_verified") is True
    if not known and not broker.refusals.admit(env, source_address(request), action):
        return
    await audit_request(
        request,
        action,
        OUTCOMES.get(status, "error" if status >= 500 else "failed"),
        actor=actor,
        target=_target(request),
        error=code,
        status=status,
        method=request.method,
        route=template or None,
        **claimed,
    )


def source_address(request: Request) -> str | None:
    """The caller's address as the server saw it: a proxy's, unless the proxy
    is one of the settings' `trusted_proxies` and named the caller."""
    return request.client.host if request.client is not None else None


def _target(request: Request) -> str | None:
    params = request.path_params
    found = params.get("name") or params.get("service")
    return str(found) if found is not None else request.query_params.get("secret")


def _principal(request: Request) -> Principal | None:
    found = _state(request, "principal")
    return found if isinstance(found, Principal) else None


def _state(request: Request, name: str) -> Any:
    return getattr(request.state, name, None)
