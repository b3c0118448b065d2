"""Secrets: read a version, write a new one, list what the caller may read, and
have every broker process drop its cached versions of one (`refresh`).

Values travel as text, or as base64 with `"encoding": "base64"` for bytes; either
way they come back byte-exact, marked with the encoding they were written in and
with `"type"`, `text` or `binary` (case C25).
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Literal

import structlog
from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from backends.base import SecretVersion, Stage
from service.audit_http import audit_request, audited_change
from service.broker import Broker
from service.dependencies import BrokerDep, EnvironmentDep, PrincipalDep, get_principal
from service.errors import InvalidRequest
from service.http import NO_STORE
from service.json_body import read_model
from service.preconditions import parse_if_match
from service.secret_fields import check_field_name, field_text
from service.sensitive import Sensitive

log = structlog.get_logger(__name__)
router = APIRouter(tags=["secrets"])

SecretName = Annotated[str, Path(max_length=256)]
MAX_VERSION_LENGTH = 128
READ_PARAMS = frozenset({"version", "stage", "field"})


class SecretWrite(BaseModel):
    """The body of a write."""

    model_config = ConfigDict(extra="forbid")

    value: str
    encoding: Literal["text", "base64"] = "text"


@router.get("/v1/{env}/secrets")
async def list_secrets(
    request: Request,
    environment: EnvironmentDep,
    principal: PrincipalDep,
    broker: BrokerDep,
    prefix: Annotated[str, Query(max_length=256)] = "",
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
    page_token: Annotated[str | None, Query(max_length=2048)] = None,
) -> JSONResponse:
    entries, next_token = await broker.secrets.list(
        environment,
        principal,
        prefix=prefix,
        page_size=page_size,
        page_token=page_token,
    )
    body = {
        "secrets": [
            {
                "name": entry.name,
                "version": entry.summary.current_version,
                "updated_at": _iso(entry.summary.updated_at),
            }
            for entry in entries
        ],
        "next_page_token": next_token,
    }
    await audit_request(request, "secret.list", target=prefix, listed=len(entries))
    return JSONResponse(body)


@router.get("/v1/{env}/secrets/{name:path}")
async def read_secret(request: Request) -> JSONResponse:
    """The hot path: parameters and the caller are read from the request by
    hand, because FastAPI's solving of each costs this route a fifth of its time."""
    broker: Broker = request.app.state.broker
    principal = await get_principal(request)
    environment = broker.environment(request.path_params["env"])
    name = request.path_params["name"]
    version, stage, field = _read_selector(request)
    found = await broker.secrets.read(
        environment, principal, name, version=version, stage=stage
    )
    body = _secret_body(name, found, stage)
    if field is not None:
        body.update(value=field_text(found, field), encoding="text", type="text")
        body["field"] = field
    log.info(
        "secret_read",
        env=environment.name,
        secret=name,
        version=found.version,
        service=principal.service,
    )
    await audit_request(request, "secret.read", target=name, version=found.version)
    return JSONResponse(body, headers={**NO_STORE, "ETag": f'"{found.version}"'})


def _read_selector(request: Request) -> tuple[str | None, Stage | None, str | None]:
    """`?version=` or `?stage=`, and `?field=`, of a read. Raises InvalidRequest.

    Any other parameter, or one given twice, is refused: a misspelt `versoin`
    must not quietly read the current version.
    """
    if not request.scope["query_string"]:
        return None, None, None
    params = request.query_params
    if len(params) != len(params.multi_items()) or not params.keys() <= READ_PARAMS:
        raise InvalidRequest(
            "a read takes only the query parameters version, stage and field, "
            "each at most once"
        )
    version = params.get("version")
    stage_name = params.get("stage")
    field = params.get("field")
    if field is not None:
        check_field_name(field)
    if version is not None and stage_name is not None:
        raise InvalidRequest("ask for a version or a stage, not both")
    if version is not None and not 0 < len(version) <= MAX_VERSION_LENGTH:
        raise InvalidRequest(
            f"version must be 1 to {MAX_VERSION_LENGTH} characters long"
        )
    if stage_name is None:
        return version, None, field
    try:
        return None, Stage(stage_name), field
    except ValueError:
        stages = ", ".join(stage.value for stage in Stage)
        raise InvalidRequest(f"stage must be one of: {stages}") from None


@router.put("/v1/{env}/secrets/{name:path}")
async def write_secret(
    name: SecretName,
    request: Request,
    environment: EnvironmentDep,
    principal: PrincipalDep,
    broker: BrokerDep,
    if_match: Annotated[str | None, Header(max_length=140)] = None,
    if_none_match: Annotated[str | None, Header(max_length=8)] = None,
) -> JSONResponse:
    write = read_model(
        SecretWrite,
        await request.body(),
        media_type=request.headers.get("content-type"),
    )
    value = _decode_value(write)
    if if_none_match is not None and if_none_match.strip() != "*":
        raise InvalidRequest("If-None-Match accepts only *")
    expected = parse_if_match(if_match)
    async with audited_change(request, "secret.write", target=name) as change:
        info = await broker.secrets.write(
            environment,
            principal,
            name,
            value,
            binary=write.encoding == "base64",
            if_match=expected,
            if_none_match=if_none_match is not None,
        )
        change.record(version=info.version)
    return JSONResponse(
        {"name": name, "version": info.version, "created_at": _iso(info.created_at)},
        headers={**NO_STORE, "ETag": f'"{info.version}"'},
    )


@router.post("/v1/{env}/secrets/{name:path}/refresh")
async def refresh_secret(
    name: SecretName,
    request: Request,
    environment: EnvironmentDep,
    principal: PrincipalDep,
    broker: BrokerDep,
) -> JSONResponse:
    """Every process drops its cached versions now; answers the current version.

    Takes `secrets:rotate:NAME` (or admin): a refresh belongs with rotation,
    for a secret changed in its store outside the broker; a reader that could
    make every process go to the store on each call could wear down the store.
    """
    async with audited_change(request, "secret.refresh", target=name) as change:
        info = await broker.secrets.refresh(environment, principal, name)
        change.record(version=info.version)
    return JSONResponse(
        {"name": name, "version": info.version, "stage": "current",
         "created_at": _iso(info.created_at)},
    )  # fmt: skip


def _secret_body(
    name: str, found: SecretVersion, stage: Stage | None
) -> dict[str, object]:
    raw = found.value.reveal()
    encoding = "base64" if found.info.binary else "text"
    if encoding == "text":
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            encoding = "base64"
    if encoding == "base64":
        value = base64.b64encode(raw).decode("ascii")
    shown_stage = stage or _stage_of(found)
    return {
        "name": name,
        "version": found.version,
        "value": value,
        "encoding": encoding,
        "type": "binary" if encoding == "base64" else "text",
        "stage": shown_stage.value if shown_stage else None,
        "created_at": _iso(found.info.created_at),
    }


def _stage_of(found: SecretVersion) -> Stage | None:
    for stage in (Stage.CURRENT, Stage.PREVIOUS, Stage.PENDING):
        if stage in found.info.stages:
            return stage
    return None


def _decode_value(write: SecretWrite) -> Sensitive:
    if write.encoding == "text":
        try:
            return Sensitive.from_text(write.value)
        except UnicodeEncodeError:
            raise InvalidRequest("value is not valid Unicode text") from None
    try:
        return Sensitive(base64.b64decode(write.value, validate=True))
    except (binascii.Error, ValueError):
        raise InvalidRequest("value is not valid base64") from None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
