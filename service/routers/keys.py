"""Signing keys, for an environment's admin: list, rotate on purpose, revoke.

`POST keys/rotate` publishes a successor that signs after an overlap (the
configured `signing_keys.overlap_seconds`, or `?overlap_seconds=`), the way
scheduled rotation does. `POST keys/{kid}/revoke` is the emergency: the key
leaves the JWKS and every token it signed is refused at once, in every process
within the revocation bound.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from service.audit_http import audited_change, source_address
from service.clock import utc
from service.dependencies import AdminDep, BrokerDep, EnvironmentDep
from service.keys import KeyState

router = APIRouter(tags=["keys"])

KeyId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
MAX_OVERLAP_SECONDS = 30 * 86400


@router.get("/v1/{env}/keys")
async def list_keys(environment: EnvironmentDep, _admin: AdminDep) -> JSONResponse:
    states = await run_in_threadpool(environment.tokens.keyring.states)
    return JSONResponse({"keys": [_state(state) for state in states]})


@router.post("/v1/{env}/keys/rotate", status_code=201)
async def rotate_key(
    request: Request,
    environment: EnvironmentDep,
    _admin: AdminDep,
    overlap_seconds: Annotated[
        float | None, Query(ge=0, le=MAX_OVERLAP_SECONDS)
    ] = None,
) -> JSONResponse:
    """Publish a new key now; it signs once the overlap has passed."""
    keyring = environment.tokens.keyring
    async with audited_change(request, "key.rotate") as change:
        key = await run_in_threadpool(keyring.rotate, overlap_seconds)
        change.record(target=key.kid, activates_at=_iso(key.activates))
    return JSONResponse(
        {
            "kid": key.kid,
            "activates_at": _iso(key.activates),
            "not_after": key.not_after.isoformat(),
        },
        status_code=201,
    )


@router.post("/v1/{env}/keys/{kid}/revoke")
async def revoke_key(
    kid: KeyId,
    request: Request,
    environment: EnvironmentDep,
    admin: AdminDep,
    broker: BrokerDep,
    reason: Annotated[str | None, Query(max_length=256)] = None,
) -> JSONResponse:
    """Withdraw a key and every token it signed."""
    async with audited_change(
        request, "key.revoke", own_outcome=True, target=kid, reason=reason
    ):
        revoked = await run_in_threadpool(
            broker.revocations.revoke_key,
            environment.name,
            kid,
            reason=reason,
            actor=admin.service,
            request_id=request.scope.get("request_id"),
            source=source_address(request),
        )
    return JSONResponse(
        {"kid": revoked.kid, "revoked": True, "replacement": revoked.replacement}
    )


def _state(state: KeyState) -> dict[str, object]:
    return {
        "kid": state.kid,
        "state": state.state,
        "created_at": state.created_at.isoformat(),
        "activates_at": state.activates_at.isoformat(),
        "not_after": state.not_after.isoformat(),
        "revoked_at": state.revoked_at.isoformat() if state.revoked_at else None,
    }


def _iso(timestamp: float) -> str:
    return utc(timestamp).isoformat()
