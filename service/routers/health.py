"""Liveness and readiness for operators and orchestrators."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from service.dependencies import BrokerDep
from service.errors import TokenBrokerError

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/readyz")
async def readyz(broker: BrokerDep) -> JSONResponse:
    """Ready when the store and every backend of every environment answer.

    Checks run at once, so one store that is slow to fail (retries, timeouts)
    delays the answer by its own time only, not by the sum of all of them.
    """
    backends = [
        (f"{environment.name}/{name}", backend)
        for environment in broker.environments.values()
        for name, backend in environment.backends.items()
    ]
    outcomes = await asyncio.gather(
        run_in_threadpool(_check_store, broker),
        *(run_in_threadpool(_check_backend, backend.check) for _, backend in backends),
    )
    names = ["store", *(key for key, _ in backends)]
    checks = dict(zip(names, outcomes, strict=True))
    ready = all(status == "ok" for status in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )


def _check_store(broker: BrokerDep) -> str:
    try:
        with broker.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:  # Readiness reports any failure, it never raises.
        return f"unavailable: {type(error).__name__}"
    return "ok"


def _check_backend(check: object) -> str:
    try:
        check()  # type: ignore[operator]
    except TokenBrokerError as error:
        return f"unavailable: {error.code}"
    except Exception as error:  # Readiness reports any failure, it never raises.
        return f"unavailable: {type(error).__name__}"
    return "ok"
