"""Policy documents: apply (or dry-run) one, read them back, explain a decision."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from policies.load import MEDIA_TYPES
from service.audit_http import audited_change
from service.dependencies import AdminDep, BrokerDep, EnvironmentDep
from service.errors import InvalidRequest
from service.explain import explanation
from service.media_types import body_media_type
from service.policy_store import Applied

router = APIRouter(tags=["policies"])

DocumentName = Annotated[str, Path(max_length=128)]
ACCEPTED_MEDIA_TYPES = ", ".join(sorted(MEDIA_TYPES))


@router.put("/v1/{env}/policies/{name}")
async def put_policy(
    name: DocumentName,
    request: Request,
    environment: EnvironmentDep,
    admin: AdminDep,
    broker: BrokerDep,
    dry_run: bool = False,
) -> JSONResponse:
    media_type = _media_type(request.headers.get("content-type"))
    body = await request.body()
    try:
        source = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("a policy document is UTF-8 text") from None

    async def apply(dry: bool) -> Applied:
        return await run_in_threadpool(
            broker.policies.put,
            environment.name,
            name,
            source,
            media_type,
            backends=environment.backends,
            actor=admin.service,
            dry_run=dry,
        )

    if dry_run:
        applied = await apply(True)
    else:
        digest = hashlib.sha256(body).hexdigest()
        async with audited_change(
            request, "policy.apply", target=name, sha256=digest
        ) as change:
            applied = await apply(False)
            await run_in_threadpool(broker.reload_policy, environment)
            change.record(version=str(applied.revision), changes=_changes(applied))
    return JSONResponse(
        {
            "name": name,
            "revision": applied.revision,
            "dry_run": dry_run,
            "changes": _changes(applied),
        }
    )


@router.get("/v1/{env}/policies")
async def list_policies(
    environment: EnvironmentDep, _admin: AdminDep, broker: BrokerDep
) -> JSONResponse:
    names = await run_in_threadpool(broker.policies.names, environment.name)
    return JSONResponse(
        {"policies": [{"name": name, "revision": rev} for name, rev in names]}
    )


@router.get("/v1/{env}/policies/explain")
async def explain(
    environment: EnvironmentDep,
    _admin: AdminDep,
    broker: BrokerDep,
    service: Annotated[str, Query(max_length=64)],
    scope: Annotated[str, Query(max_length=512)],
) -> JSONResponse:
    """Allowed or denied, the document (and its revision) and rule that decided."""
    decision = environment.policy.explain(service, scope)
    return JSONResponse(
        await run_in_threadpool(explanation, broker, environment, decision)
        | {"service": service, "scope": scope}
    )


@router.get("/v1/{env}/policies/{name}")
async def get_policy(
    name: DocumentName, environment: EnvironmentDep, _admin: AdminDep, broker: BrokerDep
) -> Response:
    source, media_type, revision = await run_in_threadpool(
        broker.policies.source, environment.name, name
    )
    return Response(source, media_type=media_type, headers={"ETag": f'"{revision}"'})


@router.delete("/v1/{env}/policies/{name}", status_code=204)
async def delete_policy(
    name: DocumentName,
    request: Request,
    environment: EnvironmentDep,
    admin: AdminDep,
    broker: BrokerDep,
) -> Response:
    async with audited_change(request, "policy.delete", target=name):
        await run_in_threadpool(
            broker.policies.delete,
            environment.name,
            name,
            backends=environment.backends,
            actor=admin.service,
        )
        await run_in_threadpool(broker.reload_policy, environment)
    return Response(status_code=204)


def _changes(applied: Applied) -> dict[str, dict[str, list[str]]]:
    return {
        service: {"added": list(change.added), "removed": list(change.removed)}
        for service, change in applied.changes.items()
    }


def _media_type(header: str | None) -> str:
    """The base media type of a policy document; YAML when none is given.

    Raises UnsupportedMediaType for a type the loader does not read, or a
    charset other than UTF-8.
    """
    return body_media_type(
        header,
        MEDIA_TYPES,
        default="application/yaml",
        refusal=f"a policy document is UTF-8 text of one of: {ACCEPTED_MEDIA_TYPES}",
    )
