"""The audit chain over HTTP: export it as JSON lines, or have it verified.

Both need `admin` in the environment. The proof that counts is the offline one,
`tokenbroker audit verify --config`, which reads the store itself; the HTTP one
serves operators who only have the API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from service.audit_chain import records, verify
from service.audit_http import audit_request
from service.broker import Broker
from service.dependencies import AdminDep, BrokerDep, EnvironmentDep

router = APIRouter(tags=["audit"])

NDJSON = "application/x-ndjson"


@router.get("/v1/{env}/audit")
async def export(
    request: Request,
    environment: EnvironmentDep,
    _admin: AdminDep,
    broker: BrokerDep,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int | None, Query(ge=1)] = None,
) -> StreamingResponse:
    """Records after number `after`, oldest first, one JSON object per line."""
    await audit_request(request, "audit.export", after=after, limit=limit)
    return StreamingResponse(
        _lines(broker, environment.name, after, limit), media_type=NDJSON
    )


@router.get("/v1/{env}/audit/verify")
async def verify_chain(
    request: Request, environment: EnvironmentDep, _admin: AdminDep, broker: BrokerDep
) -> JSONResponse:
    """Whether the chain is intact, or the first record where it breaks."""
    verdict = await run_in_threadpool(verify, broker.engine, environment.name)
    await audit_request(
        request, "audit.verify", outcome="ok" if verdict.intact else "broken"
    )
    return JSONResponse(verdict.as_json())


def _lines(broker: Broker, env: str, after: int, limit: int | None) -> Iterator[str]:
    # A sync generator: Starlette runs it in a worker thread, off the event loop.
    with broker.engine.connect() as connection:
        for record in records(connection, env, after=after, limit=limit):
            yield json.dumps(record.as_json(), ensure_ascii=False) + "\n"
