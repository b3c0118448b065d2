"""Compromise: of a secret version, of a whole service; and the kept reports.

`POST secrets/{name}/compromise` (`secrets:revoke:NAME`) answers 200 with the
report once the compromised version is disabled, or 202 while its emergency
rotation still has a step to run (or needs a person: `state` says which).
`POST services/{service}/compromise` is the admin's break-glass. Both answer
`Location: compromises/{id}`, where the report can be read again.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from policies.duration import parse_duration
from policies.match import validate_secret_name
from service.audit_http import audit_request, audited_change, source_address
from service.compromise.records import State
from service.dependencies import AdminDep, BrokerDep, EnvironmentDep, PrincipalDep
from service.errors import InvalidRequest
from service.http import NO_STORE
from service.json_body import read_model

router = APIRouter(tags=["compromise"])

SecretName = Annotated[str, Path(max_length=256)]
ServiceName = Annotated[str, Path(max_length=64)]
DEFAULT_WINDOW = "24h"


class SecretCompromiseRequest(BaseModel):
    """The body of a secret compromise."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=256)
    # A version id, or `current`.
    version: str = Field(default="current", min_length=1, max_length=128)


class ServiceCompromiseRequest(BaseModel):
    """The body of a service compromise (break-glass)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=256)
    # How far back to report (and with `rotate`, rotate) what the service read.
    window: str = Field(default=DEFAULT_WINDOW, max_length=32)
    rotate: bool = False

    @field_validator("window")
    @classmethod
    def _duration(cls, window: str) -> str:
        parse_duration(window)
        return window


@router.post("/v1/{env}/secrets/{name:path}/compromise")
async def compromise_secret(
    name: SecretName,
    request: Request,
    environment: EnvironmentDep,
    principal: PrincipalDep,
    broker: BrokerDep,
) -> JSONResponse:
    """Emergency response to a compromised version; answers the report."""
    _check_name(name)
    body = read_model(
        SecretCompromiseRequest,
        await request.body(),
        media_type=request.headers.get("content-type"),
    )
    async with audited_change(
        request, "secret.compromise", target=name, version=body.version,
        reason=body.reason,
    ) as change:  # fmt: skip
        report = await broker.compromise.compromise_secret(
            environment, principal, name, body.version, reason=body.reason,
            request_id=request.scope.get("request_id"),
            source=source_address(request),
        )  # fmt: skip
        change.record(
            version=report["version"], compromise_id=report["id"],
            state=report["state"], new_version=report["new_version"],
            services=len(report["services"]),
            tokens=len(report["tokens_revoked"]),
        )  # fmt: skip
    return _answer(environment.name, report)


@router.post("/v1/{env}/services/{service}/compromise")
async def compromise_service(
    service: ServiceName,
    request: Request,
    environment: EnvironmentDep,
    admin: AdminDep,
    broker: BrokerDep,
) -> JSONResponse:
    """Break-glass: disable a service, revoke its tokens and credentials, and
    report (or rotate) every secret it read within the window."""
    body = read_model(
        ServiceCompromiseRequest,
        await request.body(),
        media_type=request.headers.get("content-type"),
    )
    async with audited_change(
        request, "service.compromise", target=service, reason=body.reason,
        window=body.window, rotate=body.rotate,
    ) as change:  # fmt: skip
        report = await broker.compromise.compromise_service(
            environment, admin, service,
            window_seconds=parse_duration(body.window), reason=body.reason,
            rotate=body.rotate, request_id=request.scope.get("request_id"),
            source=source_address(request),
        )  # fmt: skip
        change.record(
            compromise_id=report["id"], reads=len(report["reads"]),
            credentials=len(report["credentials_revoked"]),
            rotations=len(report.get("rotations", [])),
        )  # fmt: skip
    return _answer(environment.name, report)


@router.get("/v1/{env}/compromises/{compromise_id}")
async def read_compromise(
    compromise_id: Annotated[str, Path(max_length=36)],
    request: Request,
    environment: EnvironmentDep,
    principal: PrincipalDep,
    broker: BrokerDep,
) -> JSONResponse:
    """A kept report, with what every process has added to it since."""
    report = await broker.compromise.report(environment, principal, compromise_id)
    await audit_request(request, "compromise.read", target=compromise_id)
    return JSONResponse(report, headers=NO_STORE)


@router.get("/v1/{env}/compromises")
async def list_compromises(
    request: Request,
    environment: EnvironmentDep,
    principal: PrincipalDep,
    broker: BrokerDep,
    secret: Annotated[str | None, Query(max_length=256)] = None,
    service: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JSONResponse:
    """The newest reports the caller may read, newest first."""
    if secret is not None and service is not None:
        raise InvalidRequest("filter by a secret or by a service, not both")
    found = await broker.compromise.latest(
        environment, principal, secret=secret, service=service, limit=limit
    )
    await audit_request(
        request, "compromise.list", target=secret or service, listed=len(found)
    )
    return JSONResponse({"compromises": found}, headers=NO_STORE)


def _answer(env: str, report: dict[str, Any]) -> JSONResponse:
    status = 200 if report["state"] == State.CONTAINED.value else 202
    headers = {**NO_STORE, "Location": f"/v1/{env}/compromises/{report['id']}"}
    return JSONResponse(report, status_code=status, headers=headers)


def _check_name(name: str) -> None:
    try:
        validate_secret_name(name)
    except ValueError as error:
        raise InvalidRequest(f"invalid secret name: {error}") from None
