"""Services: credentials (create one, shown once; list; revoke one), and
revoking every token of a service, optionally disabling it until enabled."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from service.admins import keep_an_admin_credential
from service.audit_http import audited_change, source_address
from service.clock import utc
from service.dependencies import AdminDep, BrokerDep, EnvironmentDep
from service.environment import Environment
from service.errors import Conflict, NotFound
from service.http import NO_STORE
from service.revocation_set import Revocation

router = APIRouter(tags=["services"])

ServiceName = Annotated[str, Path(max_length=64)]
Reason = Annotated[str | None, Query(max_length=256)]


@router.post("/v1/{env}/services/{service}/credentials", status_code=201)
async def create_credential(
    service: ServiceName,
    request: Request,
    environment: EnvironmentDep,
    admin: AdminDep,
    broker: BrokerDep,
) -> JSONResponse:
    _require_service(environment, service)
    async with audited_change(request, "credential.create", target=service) as change:
        created = await run_in_threadpool(
            broker.credentials.create, environment.name, service
        )
        change.record(version=created.info.id)
    return JSONResponse(
        {
            "client_id": service,
            "client_secret": created.secret.reveal_text(),
            "credential_id": created.info.id,
            "created_at": created.info.created_at.isoformat(),
            "token_endpoint": f"{environment.issuer}/token",
        },
        status_code=201,
        headers=NO_STORE,
    )


@router.get("/v1/{env}/services/{service}/credentials")
async def list_credentials(
    service: ServiceName,
    environment: EnvironmentDep,
    _admin: AdminDep,
    broker: BrokerDep,
) -> JSONResponse:
    found = await run_in_threadpool(broker.credentials.list, environment.name, service)
    return JSONResponse(
        {
            "credentials": [
                {"credential_id": info.id, "created_at": info.created_at.isoformat()}
                for info in found
            ]
        }
    )


@router.delete("/v1/{env}/services/{service}/credentials/{credential_id}")
async def revoke_credential(
    service: ServiceName,
    credential_id: Annotated[str, Path(max_length=40)],
    request: Request,
    environment: EnvironmentDep,
    _admin: AdminDep,
    broker: BrokerDep,
) -> Response:
    async with audited_change(
        request, "credential.revoke", target=service, version=credential_id
    ):
        await run_in_threadpool(
            keep_an_admin_credential, environment.name, environment.policy,
            broker.credentials, service, credential_id,
        )  # fmt: skip
        await run_in_threadpool(
            broker.credentials.revoke, environment.name, service, credential_id
        )
    return Response(status_code=204)


@router.post("/v1/{env}/services/{service}/revoke")
async def revoke_service(
    service: ServiceName,
    request: Request,
    environment: EnvironmentDep,
    admin: AdminDep,
    broker: BrokerDep,
    disable: bool = False,
    reason: Reason = None,
) -> JSONResponse:
    """Every token the service holds stops working; `disable` refuses new ones."""
    if disable and service == admin.service:
        raise Conflict("an admin cannot disable the service it calls as")
    async with audited_change(
        request, "service.revoke", own_outcome=True, target=service,
        disable=disable, reason=reason,
    ):  # fmt: skip
        revoked = await run_in_threadpool(
            broker.revocations.revoke_service,
            environment.name,
            service,
            disable,
            reason=reason,
            actor=admin.service,
            request_id=request.scope.get("request_id"),
            source=source_address(request),
        )
    return JSONResponse(_service_state(service, revoked))


@router.post("/v1/{env}/services/{service}/enable")
async def enable_service(
    service: ServiceName,
    request: Request,
    environment: EnvironmentDep,
    admin: AdminDep,
    broker: BrokerDep,
    reason: Reason = None,
) -> JSONResponse:
    """A disabled service may get tokens again; its old tokens stay revoked."""
    async with audited_change(
        request, "service.enable", own_outcome=True, target=service, reason=reason
    ):
        enabled = await run_in_threadpool(
            broker.revocations.enable_service,
            environment.name,
            service,
            reason=reason,
            actor=admin.service,
            request_id=request.scope.get("request_id"),
            source=source_address(request),
        )
    return JSONResponse(_service_state(service, enabled))


def _service_state(service: str, revocation: Revocation) -> dict[str, object]:
    return {
        "service": service,
        "revoked_before": utc(revocation.revoked_at).isoformat(),
        "disabled": revocation.disabled,
    }


def _require_service(environment: Environment, service: str) -> None:
    if not environment.policy.has_service(service):
        raise NotFound(
            f"no policy names a service {service!r}; apply one that does first"
        )
