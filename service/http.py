"""The HTTP edges every router shares: errors, request limits and request logs.

Every failure leaves as JSON `{"error", "error_description", "request_id"}` with a
precise status; nothing echoes what the caller sent, and no traceback ever reaches
a client. The middlewares are plain ASGI: they run on every request, including
the hot ones, and cost little.
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.audit import AuditLog, AuditUnavailable
from service.audit_http import audit_failure
from service.errors import (
    AuthenticationFailed,
    InvalidRequest,
    PayloadTooLarge,
    PolicyInvalid,
    TokenBrokerError,
)
from service.validation import describe

log = structlog.get_logger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Request ids need to be unique, not unpredictable: a random prefix per process
# and a counter cost far less than random bytes drawn for every request
# (os.urandom is a system call each time).
_ID_PREFIX = secrets.token_hex(4)
_ID_COUNTER = itertools.count()
STATUS_CODES = {
    400: "invalid_request",
    401: "invalid_token",
    403: "insufficient_scope",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def authorization(request: Request) -> str | None:
    """The request's Authorization header; None when there is none.

    Raises InvalidRequest for more than one: a proxy in front of the broker
    may act on another of them than the broker would.
    """
    found = request.headers.getlist("authorization")
    if len(found) > 1:
        raise InvalidRequest("a request takes one Authorization header, not several")
    return found[0] if found else None


def error_response(
    request: Request | None,
    status: int,
    code: str,
    description: str,
    headers: dict[str, str] | None = None,
    **more: object,
) -> JSONResponse:
    """The JSON error answer; `more` adds fields after the standard ones."""
    body: dict[str, object] = {"error": code, "error_description": description}
    if request is not None:
        body["request_id"] = request.scope.get("request_id", "")
    body.update(more)
    return JSONResponse(
        body, status_code=status, headers={**NO_STORE, **(headers or {})}
    )


async def broker_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, TokenBrokerError)
    if not isinstance(error, AuditUnavailable):
        try:
            await audit_failure(request, error.status, error.code)
        except AuditUnavailable as unavailable:
            error = unavailable
    headers: dict[str, str] = {}
    if isinstance(error, AuthenticationFailed) and error.code == "invalid_token":
        headers["WWW-Authenticate"] = (
            'Bearer realm="tokenbroker", error="invalid_token"'
        )
    if error.status == 403:
        headers["WWW-Authenticate"] = (
            'Bearer realm="tokenbroker", error="insufficient_scope"'
        )
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(error.retry_after)))
    if error.status >= 500:
        # `detail` may name internal addresses: the log has it, the caller not.
        log.warning(
            "request_failed", code=error.code, error=error.message, detail=error.detail
        )
    more: dict[str, object] = {}
    if isinstance(error, PolicyInvalid) and len(error.problems) > 1:
        # Every problem at once, so a policy author fixes them in one pass.
        more["problems"] = error.problems
    return error_response(
        request, error.status, error.code, error.message, headers, **more
    )


async def validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    # FastAPI's default answer quotes the rejected input; this one names only
    # where the problem is and what kind it is.
    problems = describe(error.errors())
    return error_response(request, 400, "invalid_request", "; ".join(problems[:5]))


async def http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    code = STATUS_CODES.get(error.status_code, "error")
    return error_response(request, error.status_code, code, str(error.detail))


async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
    log.error(
        "unexpected_error",
        error_type=type(error).__name__,
        path=request.url.path,
        request_id=request.scope.get("request_id"),
        exc_info=error,
    )
    try:
        await audit_failure(request, 500, "server_error")
    except AuditUnavailable as unavailable:
        return error_response(request, 503, unavailable.code, unavailable.message)
    return error_response(
        request, 500, "server_error", "the broker failed; see its log"
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(TokenBrokerError, broker_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)


class PathGuard:
    """Refuse with 400 a request whose path holds a control character.

    Route patterns stop at a line break: `.` does not match one and `$` matches
    before a final one, so a percent-encoded %0A missed every route (404) or was
    cut off (`secrets/abc%0A` read `abc`). No name the broker knows holds a
    control character, so each one is refused here, before routing, the same
    way wherever it is.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _CONTROL.search(scope["path"]):
            response = error_response(
                Request(scope),
                400,
                "invalid_request",
                "the request path holds a control character, which no name holds",
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse bodies over a limit with 413 before the application reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and (
            not declared.isdigit() or int(declared) > self.max_bytes
        ):
            await _send_too_large(scope, send, self.max_bytes)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise PayloadTooLarge(
                        f"the request body is over the limit of {self.max_bytes} bytes"
                    )
            return message

        await self.app(scope, limited, send)


RequestObserver = Callable[[Scope, int, float], None]


class RequestLog:
    """Give each request an id, bound to every event it logs, and log one line
    when it ends.

    `observe` hears of every finished request (its scope, status and seconds):
    the metrics count it there, rather than in a middleware of their own, which
    would wrap every request and every message it sends a second time. `audit`
    hears when each request starts and ends, so that its writer knows when
    every request being served waits on its commit.
    """

    def __init__(
        self,
        app: ASGIApp,
        observe: RequestObserver | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.app = app
        self.observe = observe
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = _header(scope, b"x-request-id")
        request_id = offered if offered and _safe_id(offered) else _new_request_id()
        scope["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        if self.audit is not None:
            self.audit.request_started()
        # Every event logged while the request runs carries its id, in threads
        # it hands work to as well (they run in a copy of its context).
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                if self.audit is not None:
                    self.audit.request_finished()
                seconds = time.perf_counter() - started
                if self.observe is not None:
                    self.observe(scope, status, seconds)
                log.info(
                    "request",
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    duration_ms=round(seconds * 1000, 2),
                )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _new_request_id() -> str:
    """16 hex digits: unique within a process for 2**32 requests, and across
    processes by their random prefix."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFF:08x}"


def _safe_id(value: str) -> bool:
    return len(value) <= 64 and all(c.isalnum() or c in "-_." for c in value)


async def _send_too_large(scope: Scope, send: Send, limit: int) -> None:
    response = error_response(
        None,
        413,
        "payload_too_large",
        f"the request body is over the limit of {limit} bytes",
    )
    await response({**scope}, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}
