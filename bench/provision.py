"""Set the broker up over HTTP, as a person following the README would.

An admin token, a policy for the bench service, a credential for it, a secret,
and tokens for the service: one to reuse and a pool of fresh ones.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from urllib.parse import quote_plus, urlencode

import httpx
from load import Target, fetch_many

ENV = "dev"
SERVICE = "bench-svc"
# A fixture in a throwaway dev store, not a credential.
SECRET_NAME = "bench/key"  # noqa: S105
SECRET_VALUE = "s3cr3t-value-for-bench"  # noqa: S105
READ_SCOPE = f"secrets:read:{SECRET_NAME}"
POLICY = f"""\
services:
  {SERVICE}:
    secrets:
      read: ["bench/*"]
"""


class SetupFailed(RuntimeError):
    """A set-up request did not answer as the walk-through expects."""


@dataclass(frozen=True)
class Client:
    """A service's client credentials, and the form that asks for a read token."""

    client_id: str
    client_secret: str

    def basic(self) -> str:
        # RFC 6749 section 2.3.1: both parts are form-encoded before base64.
        pair = f"{quote_plus(self.client_id)}:{quote_plus(self.client_secret)}"
        return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


def token_form(scope: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "scope": scope}


def provision(base_url: str, admin_secret: str) -> Client:
    """Policy, credential and secret for the bench service; its client back."""
    api = f"{base_url}/v1/{ENV}"
    with httpx.Client(timeout=10.0) as http:
        admin = _token(http, api, Client("admin", admin_secret), "admin")
        bearer = {"Authorization": f"Bearer {admin}"}
        _expect(
            http.put(
                f"{api}/policies/bench",
                content=POLICY,
                headers={**bearer, "Content-Type": "application/yaml"},
            ),
            "apply the bench policy",
        )
        created = _expect(
            http.post(f"{api}/services/{SERVICE}/credentials", headers=bearer),
            "create a credential",
        )
        _expect(
            http.put(
                f"{api}/secrets/{SECRET_NAME}",
                json={"value": SECRET_VALUE},
                headers=bearer,
            ),
            "write the bench secret",
        )
    return Client(SERVICE, str(created["client_secret"]))


def issue_one(base_url: str, client: Client) -> str:
    with httpx.Client(timeout=10.0) as http:
        return _token(http, f"{base_url}/v1/{ENV}", client, READ_SCOPE)


def token_request(base_url: str, client: Client) -> Target:
    """A read-token request of the client-credentials grant, Basic auth."""
    return Target(
        f"{base_url}/v1/{ENV}/token",
        method="POST",
        headers=(
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Authorization", client.basic()),
        ),
        body=urlencode(token_form(READ_SCOPE)).encode(),
    )


def issue_many(
    base_url: str, client: Client, count: int, connections: int
) -> list[str]:
    """`count` read tokens, asked for over `connections` keep-alive connections."""
    bodies = fetch_many(token_request(base_url, client), count, connections)
    return [str(json.loads(body)["access_token"]) for body in bodies]


def _token(http: httpx.Client, api: str, client: Client, scope: str) -> str:
    answer = http.post(
        f"{api}/token",
        data=token_form(scope),
        headers={"Authorization": client.basic()},
    )
    return str(_expect(answer, f"get a token for {client.client_id}")["access_token"])


def _expect(answer: httpx.Response, step: str) -> dict[str, object]:
    if not answer.is_success:
        # The error body names the problem and never carries a secret.
        raise SetupFailed(f"{step}: HTTP {answer.status_code} {answer.text[:300]}")
    body: dict[str, object] = answer.json()
    return body
