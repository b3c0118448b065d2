"""Past revisions of a policy document: list them, read one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from service.dependencies import AdminDep, BrokerDep, EnvironmentDep
from service.errors import NotFound
from service.policy_history import revisions

router = APIRouter(tags=["policies"])

DocumentName = Annotated[str, Path(max_length=128)]


@router.get("/v1/{env}/policies/{name}/revisions")
async def list_revisions(
    name: DocumentName, environment: EnvironmentDep, _admin: AdminDep, broker: BrokerDep
) -> JSONResponse:
    """Every revision, oldest first: number, author, time, deleted or not."""
    found = await run_in_threadpool(revisions, broker.engine, environment.name, name)
    return JSONResponse(
        {
            "name": name,
            "revisions": [
                {
                    "revision": revision.revision,
                    "deleted": revision.deleted,
                    "created_at": revision.created_at.isoformat(),
                    "created_by": revision.created_by,
                }
                for revision in found
            ],
        }
    )


@router.get("/v1/{env}/policies/{name}/revisions/{revision}")
async def read_revision(
    name: DocumentName,
    revision: int,
    environment: EnvironmentDep,
    _admin: AdminDep,
    broker: BrokerDep,
) -> Response:
    """The document's text as it was at `revision`. 404 for a deletion."""
    found = await run_in_threadpool(revisions, broker.engine, environment.name, name)
    for kept in found:
        if kept.revision == revision and not kept.deleted:
            return Response(
                kept.source,
                media_type=kept.media_type,
                headers={"ETag": f'"{kept.revision}"'},
            )
    raise NotFound(f"the policy document has no readable revision {revision}")
