"""The HTTP edges every route shares, through the whole application."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.bootstrap import ADMIN_SERVICE
from tests.service.conftest import FakeClock
from tests.service.harness import ADMIN_SECRET, LocalBroker, local_broker

TOKEN_FORM = {"grant_type": "client_credentials"}


@pytest.fixture
def local(tmp_path: Path, clock: FakeClock) -> Iterator[LocalBroker]:
    with local_broker(tmp_path, clock) as broker:
        yield broker


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def test_two_authorization_headers_on_a_bearer_route_are_400(
    local: LocalBroker,
) -> None:
    """Even when the first is a valid token: a proxy may have used the second."""
    token = local.admin_token("dev")
    headers = [("Authorization", f"Bearer {token}"), ("Authorization", "Bearer x")]

    response = local.call("GET", "/v1/dev/secrets", headers=headers)

    assert (response.status_code, response.json()["error"]) == (
        400, "invalid_request",
    )  # fmt: skip


def test_two_authorization_headers_at_the_token_endpoint_are_400(
    local: LocalBroker,
) -> None:
    """HTTP Basic client authentication takes the same one check."""
    right = basic(ADMIN_SERVICE, ADMIN_SECRET)
    headers = [("Authorization", right), ("Authorization", basic("other", "x"))]

    response = local.call("POST", "/v1/dev/token", headers=headers, data=TOKEN_FORM)

    assert (response.status_code, response.json()["error"]) == (
        400, "invalid_request",
    )  # fmt: skip
    assert "access_token" not in response.text


def test_one_authorization_header_is_still_enough(local: LocalBroker) -> None:
    """The check refuses only a repeated header."""
    right = basic(ADMIN_SERVICE, ADMIN_SECRET)

    response = local.call(
        "POST", "/v1/dev/token", headers={"Authorization": right}, data=TOKEN_FORM
    )

    assert response.status_code == 200
