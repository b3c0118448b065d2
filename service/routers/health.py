"""Liveness and readiness for operators and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from service.readiness import OK, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready when the store, the audit log and every backend of every
    environment answer; see service/readiness.py."""
    readiness: Readiness = request.app.state.readiness
    checks = await readiness.probe()
    ready = all(status == OK for status in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )
