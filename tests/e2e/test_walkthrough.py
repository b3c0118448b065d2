"""The README's walk-through, over HTTP against the real broker process."""

from __future__ import annotations

import time
import warnings

import httpx
import pytest
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import KeySet

from tests.e2e.conftest import DevBroker

POLICY = """\
services:
  billing-api:
    secrets:
      read: ["payments/*"]
      write: ["payments/*"]
      deny: ["payments/root-*"]
    tokens:
      - audience: ledger-api
        scopes: ["ledger:write"]
    max_ttl: 15m
  ledger-api:
    secrets:
      read: ["ledger/*"]
"""


@pytest.fixture(scope="module")
def billing(dev_broker: DevBroker) -> str:
    """The billing-api service's client secret, after applying the policy."""
    admin = dev_broker.admin_token()
    assert dev_broker.client.put_policy(admin, "billing", POLICY).status_code == 200
    secret = dev_broker.client.new_credential(admin, "billing-api")
    response = dev_broker.client.put_secret(
        admin, "payments/stripe-key", {"value": "sk_live_walkthrough"}
    )
    assert response.status_code == 200, response.text
    return secret


def verify_with_jwks(dev_broker: DevBroker, token: str, audience: str) -> dict:
    """Verify a token the way another service would: from the JWKS alone."""
    base = dev_broker.client.base
    keys = KeySet.import_key_set(httpx.get(f"{base}/jwks.json").json())
    # RFC 9864 prefers the fully specified name "Ed25519"; SPEC.md fixes "EdDSA",
    # which joserfc still verifies but flags.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        decoded = jwt.decode(token, keys, algorithms=["EdDSA"])
    claims_registry = jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": base},
        aud={"essential": True, "value": audience},
        exp={"essential": True},
    )
    claims_registry.validate(decoded.claims)
    return dict(decoded.claims)


def test_service_reads_the_secret_its_policy_grants(
    dev_broker: DevBroker, billing: str
) -> None:
    token = dev_broker.client.access_token(
        "billing-api", billing, scope="secrets:read:payments/stripe-key"
    )

    response = dev_broker.client.get_secret(token, "payments/stripe-key")

    assert response.status_code == 200
    assert response.json()["value"] == "sk_live_walkthrough"
    assert response.json()["encoding"] == "text"
    assert response.json()["stage"] == "current"
    assert response.headers["cache-control"] == "no-store"


def test_token_verifies_from_the_jwks_with_another_jwt_library(
    dev_broker: DevBroker, billing: str
) -> None:
    token = dev_broker.client.access_token(
        "billing-api", billing, scope="secrets:read:payments/*"
    )

    claims = verify_with_jwks(dev_broker, token, dev_broker.client.base)

    assert claims["sub"] == "billing-api"
    assert claims["env"] == "dev"
    assert claims["scope"] == "secrets:read:payments/*"
    assert claims["exp"] - claims["iat"] == 300
    assert {"iss", "aud", "nbf", "jti"} <= set(claims)


def test_token_response_follows_rfc_6749(dev_broker: DevBroker, billing: str) -> None:
    response = dev_broker.client.token(
        "billing-api", billing, scope="secrets:read:payments/stripe-key"
    )

    body = response.json()
    assert response.status_code == 200
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert body["scope"] == "secrets:read:payments/stripe-key"
    assert response.headers["cache-control"] == "no-store"


def test_client_secret_in_the_form_body_also_authenticates(
    dev_broker: DevBroker, billing: str
) -> None:
    response = dev_broker.client.request(
        "POST",
        "token",
        data={
            "grant_type": "client_credentials",
            "client_id": "billing-api",
            "client_secret": billing,
        },
    )

    assert response.status_code == 200
    assert "secrets:read:payments/*" in response.json()["scope"].split()


def test_service_to_service_token_carries_the_audience(
    dev_broker: DevBroker, billing: str
) -> None:
    token = dev_broker.client.access_token(
        "billing-api", billing, audience="ledger-api", scope="ledger:write"
    )

    claims = verify_with_jwks(dev_broker, token, "ledger-api")

    assert claims["aud"] == "ledger-api"
    assert claims["scope"] == "ledger:write"


def test_service_to_service_token_cannot_read_secrets(
    dev_broker: DevBroker, billing: str
) -> None:
    token = dev_broker.client.access_token(
        "billing-api", billing, audience="ledger-api", scope="ledger:write"
    )

    response = dev_broker.client.get_secret(token, "payments/stripe-key")

    assert response.status_code == 401


def test_ttl_up_to_the_policy_max_is_granted(
    dev_broker: DevBroker, billing: str
) -> None:
    response = dev_broker.client.token("billing-api", billing, ttl="15m")

    assert response.status_code == 200
    assert response.json()["expires_in"] == 900


def test_ttl_over_the_policy_max_is_refused(
    dev_broker: DevBroker, billing: str
) -> None:
    response = dev_broker.client.token("billing-api", billing, ttl="16m")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_discovery_names_the_issuer_and_its_endpoints(dev_broker: DevBroker) -> None:
    base = dev_broker.client.base

    document = httpx.get(f"{base}/.well-known/openid-configuration").json()

    assert document["issuer"] == base
    assert document["jwks_uri"] == f"{base}/jwks.json"
    assert document["token_endpoint"] == f"{base}/token"


def test_health_and_readiness_answer(dev_broker: DevBroker) -> None:
    url = dev_broker.process.url

    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{url}/readyz").json()
    assert ready == {
        "status": "ready",
        "checks": {"store": "ok", "audit": "ok", "dev/local": "ok"},
    }


def test_token_expires_after_its_lifetime(dev_broker: DevBroker, billing: str) -> None:
    """A token is refused once its `exp` has passed (a 2 s token, waited out)."""
    token = dev_broker.client.access_token(
        "billing-api", billing, scope="secrets:read:payments/stripe-key", ttl="2"
    )
    assert dev_broker.client.get_secret(token, "payments/stripe-key").status_code == 200

    time.sleep(2.5)

    response = dev_broker.client.get_secret(token, "payments/stripe-key")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
