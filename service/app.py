"""The FastAPI application, assembled in one place."""

from __future__ import annotations

from fastapi import FastAPI

from service.broker import Broker
from service.http import BodyLimit, RequestLog, install_error_handlers
from service.routers import health, oauth, policies, secrets, services

# Room for JSON escaping and base64 around a value at the size limit; the value
# itself is measured after decoding.
BODY_OVERHEAD_FACTOR = 6
MIN_BODY_LIMIT = 1024 * 1024


def create_app(broker: Broker) -> FastAPI:
    """The broker's HTTP API over an assembled `Broker`."""
    app = FastAPI(
        title="tokenbroker",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
    )
    app.state.broker = broker
    install_error_handlers(app)
    for module in (oauth, secrets, policies, services, health):
        app.include_router(module.router)
    body_limit = max(
        MIN_BODY_LIMIT, broker.settings.max_secret_bytes * BODY_OVERHEAD_FACTOR
    )
    app.add_middleware(BodyLimit, max_bytes=body_limit)
    app.add_middleware(RequestLog)
    return app
