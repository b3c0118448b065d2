"""Rotation: rotate a secret now, rotate many, read a rotation, see consumers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from backends.base import Stage
from policies.match import validate_secret_name
from policies.scopes import Action
from service.audit_http import audited_change, source_address
from service.dependencies import BrokerDep, EnvironmentDep, PrincipalDep
from service.environment import Environment
from service.errors import InvalidRequest, SecretNotFound
from service.http import NO_STORE
from service.json_body import read_model
from service.rotation.bulk import BulkResult
from service.rotation.consumers import Consumer
from service.rotation.records import Rotation, State, StepRecord

router = APIRouter(tags=["rotation"])

SecretName = Annotated[str, Path(max_length=256)]
IN_PROGRESS = frozenset({State.RUNNING, State.RETRYING})


class BulkRequest(BaseModel):
    """The body of a bulk rotation."""

    model_config = ConfigDict(extra="forbid")

    pattern: str = Field(min_length=1, max_length=256)


@router.post("/v1/{env}/secrets/{name:path}/rotate")
async def rotate_secret(
    name: SecretName,
    request: Request,
    environment: EnvironmentDep,
    principal: PrincipalDep,
    broker: BrokerDep,
) -> JSONResponse:
    """Rotate now; 200 when finished (or stopped), 202 while it goes on."""
    _check_name(name)
    async with audited_change(request, "rotation.request", target=name) as change:
        rotation = await broker.rotation.rotate(
            environment,
            principal,
            name,
            request_id=request.scope.get("request_id"),
            source=source_address(request),
        )
        change.record(
            version=rotation.new_version,
            rotation_id=rotation.id,
            state=rotation.state.value,
        )
    view = await broker.rotation.view(environment, principal, rotation.id)
    status = 202 if rotation.state in IN_PROGRESS else 200
    return JSONResponse(
        _rotation_body(view.rotation, view.steps), status_code=status, headers=NO_STORE
    )


@router.get("/v1/{env}/secrets/{name:path}/consumers")
async def secret_consumers(
    name: SecretName,
    environment: EnvironmentDep,
    principal: PrincipalDep,
    broker: BrokerDep,
) -> JSONResponse:
    """Who read which version, and whether each service has moved to current."""
    _check_name(name)
    consumers = await broker.rotation.consumers_of(environment, principal, name)
    current = await run_in_threadpool(_current_version, environment, name)
    return JSONResponse(_consumers_body(name, current, consumers), headers=NO_STORE)


@router.post("/v1/{env}/rotations")
async def rotate_many(
    request: Request,
    environment: EnvironmentDep,
    principal: PrincipalDep,
    broker: BrokerDep,
) -> JSONResponse:
    """Rotate every secret a pattern matches, in rate-limited batches."""
    body = read_model(
        BulkRequest,
        await request.body(),
        media_type=request.headers.get("content-type"),
    )
    async with audited_change(request, "rotation.bulk", target=body.pattern) as change:
        results = await broker.rotation.bulk(
            environment,
            principal,
            body.pattern,
            request_id=request.scope.get("request_id"),
            source=source_address(request),
        )
        change.record(secrets=len(results))
    return JSONResponse(
        {"pattern": body.pattern, "results": [_bulk_body(r) for r in results]},
        headers=NO_STORE,
    )


@router.get("/v1/{env}/rotations/{rotation_id}")
async def read_rotation(
    rotation_id: Annotated[str, Path(max_length=64)],
    environment: EnvironmentDep,
    principal: PrincipalDep,
    broker: BrokerDep,
) -> JSONResponse:
    view = await broker.rotation.view(environment, principal, rotation_id)
    return JSONResponse(_rotation_body(view.rotation, view.steps), headers=NO_STORE)


@router.get("/v1/{env}/rotations")
async def list_rotations(
    environment: EnvironmentDep,
    principal: PrincipalDep,
    broker: BrokerDep,
    secret: Annotated[str, Query(max_length=256)],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JSONResponse:
    """The latest rotations of one secret, newest first."""
    _check_name(secret)
    broker.secrets.authorize(environment, principal, Action.READ, secret)
    found = await run_in_threadpool(
        broker.rotation.store.history, environment.name, secret, limit
    )
    return JSONResponse(
        {"rotations": [_rotation_body(rotation, None) for rotation in found]},
        headers=NO_STORE,
    )


def _rotation_body(
    rotation: Rotation, steps: list[StepRecord] | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": rotation.id,
        "env": rotation.env,
        "secret": rotation.secret,
        "state": rotation.state.value,
        "step": rotation.step.value,
        "trigger": rotation.trigger,
        "late": rotation.late,
        "attempts": rotation.attempts,
        "failed_step": rotation.failed_step,
        "error": rotation.error,
        "diverged": rotation.diverged,
        "old_version": rotation.old_version,
        "new_version": rotation.new_version,
        "created_at": _iso(rotation.created_at),
        "updated_at": _iso(rotation.updated_at),
        "next_attempt_at": _iso(rotation.next_attempt_at),
        "finished_at": _iso(rotation.finished_at),
        "grace_until": _iso(rotation.grace_until),
        "retired_at": _iso(rotation.retired_at),
    }
    if steps is not None:
        body["steps"] = [
            {
                "step": step.step,
                "outcome": step.outcome,
                "runs": step.runs,
                "started_at": _iso(step.started_at),
                "finished_at": _iso(step.finished_at),
                "error": step.error,
            }
            for step in steps
        ]
    return body


def _bulk_body(result: BulkResult) -> dict[str, Any]:
    if result.error is not None:
        return {
            "name": result.name,
            "status": "error",
            "error": result.error.code,
            "error_description": result.error.message,
        }
    assert result.rotation is not None
    rotation = result.rotation
    # `retrying`: a step failed now and the worker tries again at
    # `next_attempt_at`; the failure is reported, never shown as progress.
    status = {
        State.GRACE: "rotated",
        State.COMPLETED: "rotated",
        State.RUNNING: "in_progress",
        State.RETRYING: "retrying",
    }.get(rotation.state, "failed")
    body: dict[str, Any] = {
        "name": result.name,
        "status": status,
        "rotation_id": rotation.id,
        "state": rotation.state.value,
        "version": rotation.new_version,
        "failed_step": rotation.failed_step,
    }
    if status in ("retrying", "failed"):
        body["error_description"] = rotation.error
        body["next_attempt_at"] = _iso(rotation.next_attempt_at)
    return body


def _consumers_body(
    name: str, current: str | None, consumers: list[Consumer]
) -> dict[str, Any]:
    latest: dict[str, Consumer] = {}
    for consumer in consumers:
        seen = latest.get(consumer.service)
        # Of two versions last read at the same instant, the current one counts:
        # a service that read current then has moved, whichever row came first.
        if seen is None or (consumer.last_read_at, consumer.version == current) > (
            seen.last_read_at,
            seen.version == current,
        ):
            latest[consumer.service] = consumer
    return {
        "name": name,
        "current_version": current,
        "consumers": [
            {
                "service": c.service,
                "version": c.version,
                "first_read_at": _iso(c.first_read_at),
                "last_read_at": _iso(c.last_read_at),
                "reads": c.reads,
            }
            for c in consumers
        ],
        "services": [
            {
                "service": service,
                "version": c.version,
                "last_read_at": _iso(c.last_read_at),
                "on_current": current is not None and c.version == current,
            }
            for service, c in sorted(latest.items())
        ],
    }


def _current_version(environment: Environment, name: str) -> str | None:
    location = environment.locate(name)
    try:
        known = location.backend.versions(location.path)
    except SecretNotFound:
        return None
    return next((i.version for i in known if Stage.CURRENT in i.stages), None)


def _check_name(name: str) -> None:
    try:
        validate_secret_name(name)
    except ValueError as error:
        raise InvalidRequest(f"invalid secret name: {error}") from None


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, tz=UTC).isoformat()
