"""The FastAPI application, assembled in one place."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.broker import Broker
from service.http import BodyLimit, PathGuard, RequestLog, install_error_handlers
from service.metrics import RequestMetrics
from service.readiness import Readiness
from service.refusals import flush_periodically
from service.routers import (
    audit,
    compromise,
    health,
    keys,
    metrics,
    oauth,
    policies,
    policy_history,
    rotation,
    secrets,
    services,
    tokens,
)

# Room for JSON escaping and base64 around a value at the size limit; the value
# itself is measured after decoding.
BODY_OVERHEAD_FACTOR = 6
MIN_BODY_LIMIT = 1024 * 1024
# In matching order. rotation and compromise come before secrets: their
# `secrets/{name}/rotate|consumers|compromise` routes would otherwise be taken
# for secret names.
ROUTED = (oauth, rotation, compromise, secrets, policies, services,
          health, metrics, policy_history, audit, tokens, keys)  # fmt: skip


def create_app(broker: Broker) -> FastAPI:
    """The broker's HTTP API over an assembled `Broker`."""
    app = FastAPI(
        title="tokenbroker",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        lifespan=_lifespan,
    )
    app.state.broker = broker
    app.state.readiness = Readiness.of(broker)
    install_error_handlers(app)
    for module in ROUTED:
        app.include_router(module.router)
    body_limit = max(
        MIN_BODY_LIMIT, broker.settings.max_secret_bytes * BODY_OVERHEAD_FACTOR
    )
    app.add_middleware(PathGuard)
    app.add_middleware(BodyLimit, max_bytes=body_limit)
    app.add_middleware(
        RequestLog,
        observe=RequestMetrics(broker.observed).observe,
        audit=broker.audit,
    )
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the broker's background work (rotation, revocation feed, summaries
    of anonymous refusals) while the app serves."""
    broker: Broker = app.state.broker
    broker.rotation.start()
    broker.revocations.start()
    summaries = asyncio.create_task(flush_periodically(broker.refusals, broker.audit))
    try:
        yield
    finally:
        summaries.cancel()
        broker.revocations.stop()
        broker.rotation.stop()
