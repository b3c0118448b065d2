"""`GET /metrics`: the broker's Prometheus metrics, in the text format."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from service.dependencies import BrokerDep

router = APIRouter(tags=["operations"])


@router.get("/metrics")
async def metrics(broker: BrokerDep) -> Response:
    # Some collectors read the store at scrape time: off the event loop.
    body = await run_in_threadpool(generate_latest, broker.metrics)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
