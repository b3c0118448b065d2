"""Client authentication at the token endpoint, under its rate limits.

The limits are checked before the secret is: a client id or an address that
has spent its failed attempts is answered 429 even with the right secret, so
guessing cannot go faster than the limit allows. Only client ids the policy
names reach the audit log as themselves.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote_plus

from fastapi import Request

from service.audit_http import source_address
from service.credentials import InvalidClient
from service.environment import Environment
from service.errors import InvalidRequest
from service.http import authorization
from service.sensitive import Sensitive

if TYPE_CHECKING:
    from service.broker import Broker

CLIENT_ID_LENGTH = 128
FINGERPRINT = 16
MAX_FORM_FIELDS = 16


async def authenticate_client(
    request: Request,
    broker: Broker,
    environment: Environment,
    client_id: str,
    secret: Sensitive,
) -> str:
    """The authenticated service, within its policy's rate.

    A disabled service (service revocation with `disable`) is refused like a
    wrong secret. Raises Throttled (429) and InvalidClient (401).
    """
    # Any longer id cannot be a service name; cut it before it becomes a key.
    client_id = client_id[:CLIENT_ID_LENGTH]
    address = source_address(request)
    request.state.audit_action = "auth.client"
    if environment.policy.has_service(client_id):
        request.state.client_id = client_id
    else:
        # An unknown client id may be a secret pasted into the wrong field: the
        # audit keeps a fingerprint, enough to tell repeated attempts apart.
        digest = hashlib.sha256(client_id.encode("utf-8", "replace")).hexdigest()
        request.state.claimed = {"unknown_client_sha256": digest[:FINGERPRINT]}
    broker.limits.check_client(environment.name, client_id, address)
    try:
        service = await broker.credentials.authenticate_async(
            environment.name, client_id, secret
        )
    except InvalidClient:
        broker.limits.client_failed(environment.name, client_id, address)
        raise
    if broker.revocations.is_disabled(environment.name, service):
        request.state.claimed = {"disabled": True}
        raise InvalidClient("client authentication failed")
    request.state.audit_action = None
    rate = environment.policy.rate_limit(service)
    broker.limits.check_service(environment.name, service, rate)
    return service


async def read_form(request: Request) -> dict[str, str]:
    """The form-encoded body, each field once. Raises InvalidRequest."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip()
    if media_type != "application/x-www-form-urlencoded":
        raise InvalidRequest("the body must be application/x-www-form-urlencoded")
    body = await request.body()
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("the form body cannot be parsed") from None
    form = dict(pairs)
    if len(form) != len(pairs):
        # RFC 6749 section 3.2: parameters must not be repeated.
        raise InvalidRequest("a form parameter is repeated")
    return form


def client_credentials(request: Request, form: dict[str, str]) -> tuple[str, Sensitive]:
    """The client id and secret, from HTTP Basic or the form (RFC 6749 2.3.1).

    Raises InvalidClient, or InvalidRequest when both are used or the
    Authorization header comes more than once.
    """
    header = authorization(request)
    in_body = "client_secret" in form
    if header and in_body:
        raise InvalidRequest("use one client authentication method, not two")
    if header:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            raise InvalidClient("client authentication failed")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise InvalidClient("client authentication failed") from None
        client_id, separator, secret = decoded.partition(":")
        if not separator:
            raise InvalidClient("client authentication failed")
        # RFC 6749 section 2.3.1: both parts are form-encoded before base64.
        return unquote_plus(client_id), Sensitive.from_text(unquote_plus(secret))
    client_id = form.get("client_id", "")
    if not client_id or not in_body:
        raise InvalidClient("client authentication failed")
    return client_id, Sensitive.from_text(form["client_secret"])
