"""Client authentication at the token endpoint, under its rate limits.

The limits are checked before the secret is: a client id or an address that
has spent its failed attempts is answered 429 even with the right secret, so
guessing cannot go faster than the limit allows. Only client ids the policy
names reach the audit log as themselves.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from fastapi import Request

from service.audit_http import source_address
from service.credentials import InvalidClient
from service.environment import Environment
from service.sensitive import Sensitive

if TYPE_CHECKING:
    from service.broker import Broker

CLIENT_ID_LENGTH = 128
FINGERPRINT = 16


async def authenticate_client(
    request: Request,
    broker: Broker,
    environment: Environment,
    client_id: str,
    secret: Sensitive,
) -> str:
    """The authenticated service, within its policy's rate.

    Raises Throttled (429) and InvalidClient (401).
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
    request.state.audit_action = None
    rate = environment.policy.rate_limit(service)
    broker.limits.check_service(environment.name, service, rate)
    return service
