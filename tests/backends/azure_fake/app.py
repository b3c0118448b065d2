"""The fake vault's HTTP face: Key Vault's secrets REST API and an Entra token endpoint.

Only what the backend and the SDK use is served, in the documented shapes: secret
bundles and items, paged listings with an absolute `nextLink` carrying a
`$skiptoken`, deleted-secret bundles, errors as `{"error": {"code", "message"}}`,
the 401 bearer challenge the SDK's challenge policy answers, and the OAuth 2.0
client-credentials grant with its OpenID discovery document. Every request is
recorded with the host it was sent to and whether it carried a credential.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.backends.azure_fake.state import (
    Deleted,
    FakeError,
    Secret,
    Seen,
    Vault,
    Version,
)

VAULT_RESOURCE = "https://vault.azure.net"
TOKEN_LIFETIME = 3600

Handler = Callable[[Request], Awaitable[Any]]


@dataclass
class Identity:
    """The one application the fake tenant knows, and the tokens it was given."""

    tenant_id: str
    client_id: str
    client_secret: str
    tokens: set[str] = field(default_factory=set)


def build_app(vault: Vault, identity: Identity) -> Starlette:
    """The ASGI application serving `vault` to callers that `identity` admits."""
    api = _Api(vault, identity)
    routes = [
        Route("/{tenant}/oauth2/v2.0/token", api.token, methods=["POST"]),
        Route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            api.openid_configuration,
            methods=["GET"],
        ),
        Route("/secrets", api.vault(api.list_secrets), methods=["GET"]),
        Route(
            "/secrets/{name}/versions",
            api.vault(api.list_versions),
            methods=["GET"],
        ),
        Route("/secrets/{name}", api.vault(api.set_secret), methods=["PUT"]),
        Route("/secrets/{name}", api.vault(api.delete_secret), methods=["DELETE"]),
        Route("/secrets/{name}", api.vault(api.get_secret), methods=["GET"]),
        Route(
            "/secrets/{name}/{version:path}",
            api.vault(api.get_secret),
            methods=["GET"],
        ),
        Route(
            "/secrets/{name}/{version:path}",
            api.vault(api.update_secret),
            methods=["PATCH"],
        ),
        Route(
            "/deletedsecrets/{name}",
            api.vault(api.get_deleted),
            methods=["GET"],
        ),
        Route(
            "/deletedsecrets/{name}",
            api.vault(api.purge_deleted),
            methods=["DELETE"],
        ),
        Route(
            "/deletedsecrets/{name}/recover",
            api.vault(api.recover_deleted),
            methods=["POST"],
        ),
    ]
    return Starlette(routes=routes)


class _Api:
    def __init__(self, vault: Vault, identity: Identity) -> None:
        self._vault = vault
        self._identity = identity

    # Entra ID -----------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        form = parse_qs((await request.body()).decode())
        known = (
            request.path_params["tenant"] == self._identity.tenant_id
            and form.get("client_id") == [self._identity.client_id]
            and form.get("client_secret") == [self._identity.client_secret]
            and form.get("grant_type") == ["client_credentials"]
        )
        if not known:
            return self._record(
                request,
                JSONResponse(
                    {
                        "error": "invalid_client",
                        "error_description": "AADSTS7000215: Invalid client.",
                    },
                    status_code=401,
                ),
            )
        token = secrets.token_urlsafe(24)
        self._identity.tokens.add(token)
        body = {
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME,
            "ext_expires_in": TOKEN_LIFETIME,
            "access_token": token,
        }
        return self._record(request, JSONResponse(body))

    async def openid_configuration(self, request: Request) -> Response:
        base = f"https://{request.headers['host']}/{request.path_params['tenant']}"
        body = {
            "issuer": f"{base}/v2.0",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
            "response_types_supported": ["code", "id_token", "token"],
        }
        return self._record(request, JSONResponse(body))

    # Key Vault ----------------------------------------------------------------

    def vault(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """Wraps a vault endpoint: bearer check, throttling, errors, recording."""

        async def endpoint(request: Request) -> Response:
            if not self._authorized(request):
                return self._record(request, self._challenge())
            if self._vault.throttles(f"{request.method} {request.url.path}"):
                return self._record(request, self._throttled())
            try:
                body = await handler(request)
            except FakeError as error:
                return self._record(request, _error_response(error))
            if body is None:
                return self._record(request, Response(status_code=204))
            return self._record(request, JSONResponse(body))

        return endpoint

    async def set_secret(self, request: Request) -> dict[str, Any]:
        payload = await _json(request)
        attributes = payload.get("attributes") or {}
        version = self._vault.set(
            request.path_params["name"],
            _string(payload.get("value")),
            content_type=payload.get("contentType"),
            tags=payload.get("tags") or {},
            enabled=attributes.get("enabled", True) is not False,
        )
        secret, _ = self._vault.get(request.path_params["name"], version.id)
        return self._bundle(request, secret, version)

    async def get_secret(self, request: Request) -> dict[str, Any]:
        version = request.path_params.get("version", "").strip("/")
        secret, found = self._vault.get(request.path_params["name"], version)
        return self._bundle(request, secret, found)

    async def update_secret(self, request: Request) -> dict[str, Any]:
        payload = await _json(request)
        attributes = payload.get("attributes") or {}
        secret, found = self._vault.update(
            request.path_params["name"],
            request.path_params["version"].strip("/"),
            enabled=attributes.get("enabled"),
            tags=payload.get("tags"),
            content_type=payload.get("contentType"),
        )
        bundle = self._bundle(request, secret, found)
        del bundle["value"]
        return bundle

    async def list_secrets(self, request: Request) -> dict[str, Any]:
        items = [
            self._item(request, secret, secret.latest, with_version=False)
            for secret in self._vault.secrets()
        ]
        return self._page(request, items)

    async def list_versions(self, request: Request) -> dict[str, Any]:
        name = request.path_params["name"]
        secret = Secret(name, self._vault.versions(name))
        items = [
            self._item(request, secret, version, with_version=True)
            for version in secret.versions
        ]
        return self._page(request, items)

    async def delete_secret(self, request: Request) -> dict[str, Any]:
        return self._deleted_bundle(
            request, self._vault.delete(request.path_params["name"])
        )

    async def get_deleted(self, request: Request) -> dict[str, Any]:
        return self._deleted_bundle(
            request, self._vault.deleted(request.path_params["name"])
        )

    async def purge_deleted(self, request: Request) -> None:
        self._vault.purge(request.path_params["name"])

    async def recover_deleted(self, request: Request) -> dict[str, Any]:
        secret = self._vault.recover(request.path_params["name"])
        return self._bundle(request, secret, secret.latest)

    # Answers ------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and token in self._identity.tokens

    def _challenge(self) -> Response:
        authority = f"https://login.microsoftonline.com/{self._identity.tenant_id}"
        return JSONResponse(
            {
                "error": {
                    "code": "Unauthorized",
                    "message": "AKV10000: Request is missing a Bearer or PoP token.",
                }
            },
            status_code=401,
            headers={
                "WWW-Authenticate": (
                    f'Bearer authorization="{authority}", resource="{VAULT_RESOURCE}"'
                )
            },
        )

    def _throttled(self) -> Response:
        seconds = self._vault.faults.retry_after
        return _error_response(
            FakeError(
                429,
                "Throttled",
                f"Rate limit is exceeded. Try again in {seconds} seconds.",
                headers={"Retry-After": str(seconds)},
            )
        )

    def _record(self, request: Request, response: Response) -> Response:
        with self._vault.lock:
            self._vault.seen.append(
                Seen(
                    request.method,
                    request.headers.get("host", ""),
                    request.url.path,
                    "authorization" in request.headers,
                    response.status_code,
                    time.monotonic(),
                )
            )
        return response

    def _page(self, request: Request, items: list[dict[str, Any]]) -> dict[str, Any]:
        faults = self._vault.faults
        size = min(int(request.query_params.get("maxresults") or 25), faults.page_size)
        token = request.query_params.get("$skiptoken")
        if token is None and faults.empty_first_page:
            return {"value": [], "nextLink": self._next_link(request, 0, size)}
        offset = _offset(token) if token else 0
        page: dict[str, Any] = {"value": items[offset : offset + size]}
        if offset + size < len(items):
            if token is not None and faults.repeat_skiptoken:
                page["nextLink"] = self._next_link(request, offset, size)
            else:
                page["nextLink"] = self._next_link(request, offset + size, size)
        else:
            page["nextLink"] = None
        return page

    def _next_link(self, request: Request, offset: int, size: int) -> str:
        host = self._vault.faults.next_link_host or request.headers["host"]
        token = base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()
        version = request.query_params.get("api-version", "7.5")
        return (
            f"https://{host}{request.url.path}?api-version={version}"
            f"&$skiptoken={token.rstrip('=')}&maxresults={size}"
        )

    def _bundle(
        self, request: Request, secret: Secret, version: Version
    ) -> dict[str, Any]:
        bundle = self._item(request, secret, version, with_version=True)
        bundle["value"] = version.value
        return bundle

    def _item(
        self, request: Request, secret: Secret, version: Version, *, with_version: bool
    ) -> dict[str, Any]:
        identifier = f"https://{request.headers['host']}/secrets/{secret.name}"
        if with_version:
            identifier += f"/{version.id}"
        item: dict[str, Any] = {
            "id": identifier,
            "attributes": {
                "enabled": version.enabled,
                "created": version.created,
                "updated": version.updated,
                "recoveryLevel": self._vault.recovery_level,
                "recoverableDays": 90,
            },
        }
        if version.tags:
            item["tags"] = dict(version.tags)
        if version.content_type is not None:
            item["contentType"] = version.content_type
        return item

    def _deleted_bundle(self, request: Request, deleted: Deleted) -> dict[str, Any]:
        bundle = self._bundle(request, deleted.secret, deleted.secret.latest)
        del bundle["value"]
        name = deleted.secret.name
        bundle["recoveryId"] = (
            f"https://{request.headers['host']}/deletedsecrets/{name}"
        )
        bundle["deletedDate"] = deleted.deleted
        bundle["scheduledPurgeDate"] = deleted.scheduled_purge
        return bundle


def _error_response(error: FakeError) -> Response:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.inner_code:
        body["innererror"] = {"code": error.inner_code}
    return JSONResponse(
        {"error": body}, status_code=error.status, headers=error.headers
    )


async def _json(request: Request) -> dict[str, Any]:
    try:
        payload = await request.json()
    except ValueError:
        raise FakeError(400, "BadParameter", "The request body is not JSON.") from None
    if not isinstance(payload, dict):
        raise FakeError(400, "BadParameter", "The request body is not an object.")
    return payload


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise FakeError(400, "BadParameter", "Property value must be a string.")
    return value


def _offset(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        return int(text.removeprefix("offset:"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise FakeError(400, "BadParameter", "Invalid $skiptoken.") from None
