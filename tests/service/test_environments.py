"""Two environments in one process share nothing a token can reach."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.broker import Broker
from service.config import load_settings
from tests.service.conftest import FakeClock
from tests.service.harness import (
    PUBLIC_URL,
    TWO_ENVIRONMENTS,
    LocalBroker,
    local_broker,
    write_config,
)


@pytest.fixture
def local(tmp_path: Path, clock: FakeClock) -> Iterator[LocalBroker]:
    with local_broker(tmp_path, clock) as broker:
        yield broker


def _refusal(local: LocalBroker) -> dict[str, Any]:
    return [r for r in local.audit_records("prod") if r["outcome"] == "refused"][-1]


def test_a_dev_token_is_refused_by_prod(local: LocalBroker) -> None:
    dev_token = local.admin_token("dev")

    response = local.call(
        "GET", "/v1/prod/secrets/app/db", headers=local.bearer(dev_token)
    )

    assert response.status_code == 401
    assert response.json()["error_description"] == "the bearer token is not valid"


def test_a_dev_token_at_prod_is_audited_in_prod_as_cross_environment(
    local: LocalBroker,
) -> None:
    dev_token = local.admin_token("dev")

    local.call("GET", "/v1/prod/secrets/app/db", headers=local.bearer(dev_token))

    detail = _refusal(local)["detail"]
    assert detail["cross_environment"] is True
    assert (detail["claimed_env"], detail["claimed_env_verified"]) == ("dev", True)


def test_a_forged_token_claiming_dev_is_labelled_unverified(
    local: LocalBroker, clock: FakeClock
) -> None:
    now = int(clock.now())
    forged = jwt.encode(
        {
            "iss": f"{PUBLIC_URL}/v1/dev",
            "sub": "admin",
            "aud": f"{PUBLIC_URL}/v1/dev",
            "env": "dev",
            "scope": "admin",
            "iat": now,
            "nbf": now,
            "exp": now + 60,
            "jti": "forged-jti",
        },
        Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
        headers={"kid": "made-up"},
    )

    local.call("GET", "/v1/prod/secrets/app/db", headers=local.bearer(forged))

    detail = _refusal(local)["detail"]
    assert (detail["cross_environment"], detail["claimed_env_verified"]) == (
        True, False,
    )  # fmt: skip


def test_an_expired_prod_token_is_refused_but_not_labelled_cross_environment(
    local: LocalBroker, clock: FakeClock
) -> None:
    token = local.admin_token("prod")
    clock.advance(3600)

    local.call("GET", "/v1/prod/secrets/app/db", headers=local.bearer(token))

    assert "cross_environment" not in _refusal(local)["detail"]


def test_a_secret_written_in_dev_is_not_found_in_prod(local: LocalBroker) -> None:
    dev = local.bearer(local.admin_token("dev"))
    prod = local.bearer(local.admin_token("prod"))
    local.call("PUT", "/v1/dev/secrets/app/db", json={"value": "dev"}, headers=dev)

    response = local.call("GET", "/v1/prod/secrets/app/db", headers=prod)

    assert response.status_code == 404


def test_a_dev_client_credential_does_not_authenticate_at_prod(
    local: LocalBroker,
) -> None:
    local.put_policy("dev", "app", "services:\n  app:\n    admin: true\n")
    local.put_policy("prod", "app", "services:\n  app:\n    admin: true\n")
    secret = local.credential("dev", "app")

    response = local.token_response("prod", "app", secret)

    assert response.status_code == 401


def test_an_environment_not_served_does_not_exist(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = write_config(tmp_path, TWO_ENVIRONMENTS)
    broker = Broker(load_settings(path), public_url=PUBLIC_URL, only_env="prod",
                    clock=clock)  # fmt: skip
    try:
        assert sorted(broker.environments) == ["prod"]
    finally:
        broker.close()
