"""The HTTP edges every route shares, through the whole application."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
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


def _without_request_id(response: httpx.Response) -> tuple[int, dict[str, object]]:
    body = dict(response.json())
    body.pop("request_id", None)
    return response.status_code, body


def test_a_line_break_in_a_secret_name_is_400_like_any_control_character(
    local: LocalBroker,
) -> None:
    """%0A no longer misses every route: it is refused as %01 is, with a reason."""
    headers = local.bearer(local.admin_token("dev"))

    line_break = local.call("GET", "/v1/dev/secrets/a%0Ab", headers=headers)
    control = local.call("GET", "/v1/dev/secrets/a%01b", headers=headers)

    assert _without_request_id(line_break) == _without_request_id(control)
    assert (line_break.status_code, line_break.json()["error"]) == (
        400, "invalid_request",
    )  # fmt: skip


@pytest.mark.parametrize(
    "path",
    ["/v1/dev/secrets/app/db%0A", "/v1/dev/secrets/app/db/rotate%0A"],
    ids=["read", "sub-route"],
)
def test_a_trailing_line_break_never_reaches_the_secret_without_it(
    local: LocalBroker, path: str
) -> None:
    """`app/db%0A` is not `app/db`: route patterns no longer end before it."""
    headers = local.bearer(local.admin_token("dev"))
    written = local.call(
        "PUT", "/v1/dev/secrets/app/db", headers=headers, json={"value": "<VALUE>"}
    )
    assert written.status_code == 200

    method = "POST" if "rotate" in path else "GET"
    response = local.call(method, path, headers=headers)

    assert response.status_code == 400
    assert "<VALUE>" not in response.text
