"""Secrets over HTTP: versions, compare-and-set, stages, listing, limits, errors."""

from __future__ import annotations

import base64
import os

import pytest

from tests.e2e.conftest import DevBroker

POLICY = """\
services:
  reader:
    secrets:
      read: ["team/*"]
      deny: ["team/root-*"]
  writer:
    secrets:
      read: ["team/**"]
      write: ["team/**"]
"""


@pytest.fixture(scope="module")
def tokens(dev_broker: DevBroker) -> dict[str, str]:
    """Tokens of the admin, a reader and a writer."""
    admin = dev_broker.admin_token()
    assert dev_broker.client.put_policy(admin, "team", POLICY).status_code == 200
    found = {"admin": admin}
    for service in ("reader", "writer"):
        secret = dev_broker.client.new_credential(admin, service)
        found[service] = dev_broker.client.access_token(service, secret)
    return found


def put(
    dev_broker: DevBroker, token: str, name: str, value: str, **headers: str
) -> int:
    response = dev_broker.client.put_secret(token, name, {"value": value}, **headers)
    return response.status_code


def test_each_write_makes_a_numbered_version(
    dev_broker: DevBroker, tokens: dict[str, str]
) -> None:
    for value in ("one", "two", "three"):
        assert put(dev_broker, tokens["writer"], "team/numbered", value) == 200

    current = dev_broker.client.get_secret(tokens["reader"], "team/numbered").json()
    first = dev_broker.client.get_secret(
        tokens["reader"], "team/numbered", version="1"
    ).json()
    previous = dev_broker.client.get_secret(
        tokens["reader"], "team/numbered", stage="previous"
    ).json()

    assert (current["version"], current["value"]) == ("3", "three")
    assert (first["version"], first["value"]) == ("1", "one")
    assert (previous["version"], previous["stage"]) == ("2", "previous")


def test_if_match_with_the_current_version_writes(
    dev_broker: DevBroker, tokens: dict[str, str]
) -> None:
    put(dev_broker, tokens["writer"], "team/cas-ok", "one")

    status = put(
        dev_broker, tokens["writer"], "team/cas-ok", "two", **{"If-Match": '"1"'}
    )

    assert status == 200


def test_if_match_with_a_stale_version_is_412_and_writes_nothing(
    dev_broker: DevBroker, tokens: dict[str, str]
) -> None:
    put(dev_broker, tokens["writer"], "team/cas", "one")
    put(dev_broker, tokens["writer"], "team/cas", "two")

    status = put(dev_broker, tokens["writer"], "team/cas", "three", **{"If-Match": "1"})

    assert status == 412
    current = dev_broker.client.get_secret(tokens["reader"], "team/cas").json()
    assert (current["version"], current["value"]) == ("2", "two")


def test_if_none_match_refuses_to_overwrite(
    dev_broker: DevBroker, tokens: dict[str, str]
) -> None:
    assert (
        put(dev_broker, tokens["writer"], "team/once", "a", **{"If-None-Match": "*"})
        == 200
    )

    assert (
        put(dev_broker, tokens["writer"], "team/once", "b", **{"If-None-Match": "*"})
        == 412
    )


def test_forbidden_and_missing_secrets_look_the_same_to_the_unentitled(
    dev_broker: DevBroker, tokens: dict[str, str]
) -> None:
    """A 403 never tells whether the secret exists."""
    put(dev_broker, tokens["admin"], "other/exists", "x")

    existing = dev_broker.client.get_secret(tokens["reader"], "other/exists")
    missing = dev_broker.client.get_secret(tokens["reader"], "other/missing")

    assert existing.status_code == missing.status_code == 403
    assert existing.json()["error_description"] == missing.json()["error_description"]


def test_entitled_reader_gets_404_for_a_missing_secret(
    dev_broker: DevBroker, tokens: dict[str, str]
) -> None:
    response = dev_broker.client.get_secret(tokens["reader"], "team/never-written")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_explicit_deny_wins_over_a_wildcard_grant(
    dev_broker: DevBroker, tokens: dict[str, str]
) -> None:
    put(dev_broker, tokens["admin"], "team/root-password", "x")

    response = dev_broker.client.get_secret(tokens["reader"], "team/root-password")

    assert response.status_code == 403


def test_single_star_does_not_reach_a_sibling_prefix_or_depth(
    dev_broker: DevBroker, tokens: dict[str, str]
) -> None:
    put(dev_broker, tokens["admin"], "team-old/x", "x")
    put(dev_broker, tokens["admin"], "team/deep/x", "x")

    assert (
        dev_broker.client.get_secret(tokens["reader"], "team-old/x").status_code == 403
    )
    assert (
        dev_broker.client.get_secret(tokens["reader"], "team/deep/x").status_code == 403
    )


def test_pending_stage_is_only_for_the_rotation(
    dev_broker: DevBroker, tokens: dict[str, str]
) -> None:
    """Case C01(b): an ordinary consumer cannot read the pending version."""
    put(dev_broker, tokens["writer"], "team/pending", "x")

    response = dev_broker.client.get_secret(
        tokens["reader"], "team/pending", stage="pending"
    )

    assert response.status_code == 403


def test_missing_bearer_token_is_401_with_a_challenge(dev_broker: DevBroker) -> None:
    response = dev_broker.client.request("GET", "secrets/team/x")

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_unknown_environment_is_404(
    dev_broker: DevBroker, tokens: dict[str, str]
) -> None:
    response = dev_broker.client.request(
        "GET",
        "/v1/prod/secrets/team/x",
        headers={"Authorization": f"Bearer {tokens['reader']}"},
    )

    assert response.status_code == 404


def test_listing_pages_through_what_the_token_may_read(
    dev_broker: DevBroker, tokens: dict[str, str]
) -> None:
    names = {f"team/list-{index}" for index in range(7)}
    for name in names:
        put(dev_broker, tokens["admin"], name, "x")

    seen: list[str] = []
    params = {"prefix": "team/list-", "page_size": "3"}
    for _page in range(10):
        page = dev_broker.client.request(
            "GET", "secrets", params=params,
            headers={"Authorization": f"Bearer {tokens['reader']}"},
        ).json()  # fmt: skip
        seen.extend(entry["name"] for entry in page["secrets"])
        if page["next_page_token"] is None:
            break
        params["page_token"] = page["next_page_token"]

    assert sorted(seen) == sorted(names)
    assert all("value" not in entry for entry in page["secrets"])


# Case C25: values come back byte-exact, binary marked as such.
EXACT = [
    pytest.param(os.urandom(1024) + b"\x00\xff", id="random-bytes"),
    pytest.param(b"QUJD", id="bytes-that-look-like-base64"),
]
TEXTS = [
    pytest.param("pässwörd-é-🔐-密", id="non-ascii"),
    pytest.param("  lead/trail spaces\nand newline  ", id="whitespace"),
    pytest.param("%0A%3B]", id="percent-encoding"),
]


@pytest.mark.parametrize("raw", EXACT)
def test_binary_value_round_trips_byte_exact(
    dev_broker: DevBroker, tokens: dict[str, str], raw: bytes
) -> None:
    body = {"value": base64.b64encode(raw).decode(), "encoding": "base64"}
    assert (
        dev_broker.client.put_secret(tokens["writer"], "team/binary", body).status_code
        == 200
    )

    read = dev_broker.client.get_secret(tokens["reader"], "team/binary").json()

    assert read["encoding"] == "base64"
    assert base64.b64decode(read["value"]) == raw


@pytest.mark.parametrize("text", TEXTS)
def test_text_value_round_trips_exactly(
    dev_broker: DevBroker, tokens: dict[str, str], text: str
) -> None:
    put(dev_broker, tokens["writer"], "team/text", text)

    read = dev_broker.client.get_secret(tokens["reader"], "team/text").json()

    assert read["encoding"] == "text"
    assert read["value"] == text


# Case C26: the limit is counted in bytes, checked before anything is written.
@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        pytest.param("a" * 65536, True, id="at-the-limit"),
        pytest.param("a" * 65537, False, id="one-byte-over"),
        pytest.param("€" * 22000, False, id="22000-three-byte-characters"),
        pytest.param("a" * 70 * 1024, False, id="70-KiB"),
    ],
)
def test_value_size_limit_is_in_bytes(
    dev_broker: DevBroker, tokens: dict[str, str], value: str, accepted: bool
) -> None:
    put(dev_broker, tokens["writer"], "team/sized", "before")

    response = dev_broker.client.put_secret(
        tokens["writer"], "team/sized", {"value": value}
    )

    current = dev_broker.client.get_secret(tokens["reader"], "team/sized").json()
    if accepted:
        assert response.status_code == 200
        assert current["value"] == value
    else:
        size = len(value.encode())
        assert response.status_code == 413
        assert f"{size} bytes" in response.json()["error_description"]
        assert "65536 bytes" in response.json()["error_description"]
        assert current["value"] == "before"


def test_malformed_body_is_400_and_never_echoed(
    dev_broker: DevBroker, tokens: dict[str, str]
) -> None:
    canary = "canary-body-4e8f1a"
    response = dev_broker.client.request(
        "PUT", "secrets/team/bad",
        json={"value": 12, "extra": canary, "encoding": canary},
        headers={"Authorization": f"Bearer {tokens['writer']}"},
    )  # fmt: skip

    assert response.status_code == 400
    assert canary not in response.text


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        pytest.param(
            {"grant_type": "password"}, 400, "unsupported_grant_type", id="grant"
        ),
        pytest.param(
            {"scope": "secrets:read:nope/x"}, 400, "invalid_scope", id="scope"
        ),
        pytest.param({"scope": "admin"}, 400, "invalid_scope", id="admin-scope"),
    ],
)
def test_token_endpoint_errors_follow_rfc_6749(
    dev_broker: DevBroker, tokens: dict[str, str], form: dict[str, str], status: int,
    error: str,
) -> None:  # fmt: skip
    admin = tokens["admin"]
    secret = dev_broker.client.new_credential(admin, "reader")
    try:
        response = dev_broker.client.request(
            "POST", "token", auth=("reader", secret),
            data={"grant_type": "client_credentials", **form},
        )  # fmt: skip
    finally:
        credentials = dev_broker.client.request(
            "GET",
            "services/reader/credentials",
            headers={"Authorization": f"Bearer {admin}"},
        ).json()["credentials"]
        dev_broker.client.request(
            "DELETE", f"services/reader/credentials/{credentials[-1]['credential_id']}",
            headers={"Authorization": f"Bearer {admin}"},
        )  # fmt: skip

    assert response.status_code == status
    assert response.json()["error"] == error


def test_wrong_client_secret_is_invalid_client(dev_broker: DevBroker) -> None:
    response = dev_broker.client.token("reader", "not-the-secret-at-all")

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_a_third_live_credential_is_refused_until_one_is_revoked(
    dev_broker: DevBroker, tokens: dict[str, str]
) -> None:
    admin = tokens["admin"]
    headers = {"Authorization": f"Bearer {admin}"}
    first = dev_broker.client.new_credential(admin, "writer")
    second_response = dev_broker.client.request(
        "POST", "services/writer/credentials", headers=headers
    )
    listed = dev_broker.client.request(
        "GET", "services/writer/credentials", headers=headers
    ).json()["credentials"]
    assert second_response.status_code == 409  # the fixture created one already
    oldest = listed[0]["credential_id"]

    revoked = dev_broker.client.request(
        "DELETE", f"services/writer/credentials/{oldest}", headers=headers
    )
    third = dev_broker.client.request(
        "POST", "services/writer/credentials", headers=headers
    )

    assert revoked.status_code == 204
    assert third.status_code == 201
    assert dev_broker.client.token("writer", first).status_code == 200


def test_credentials_only_for_services_a_policy_names(
    dev_broker: DevBroker, tokens: dict[str, str]
) -> None:
    response = dev_broker.client.request(
        "POST", "services/ghost/credentials",
        headers={"Authorization": f"Bearer {tokens['admin']}"},
    )  # fmt: skip

    assert response.status_code == 404


def test_non_admin_cannot_apply_policy(
    dev_broker: DevBroker, tokens: dict[str, str]
) -> None:
    response = dev_broker.client.put_policy(tokens["writer"], "evil", POLICY)

    assert response.status_code == 403


def test_policy_change_applies_to_tokens_already_issued(
    dev_broker: DevBroker, tokens: dict[str, str]
) -> None:
    """A deny added after issue wins at once."""
    put(dev_broker, tokens["admin"], "team/late-deny", "x")
    assert (
        dev_broker.client.get_secret(tokens["reader"], "team/late-deny").status_code
        == 200
    )

    denied = POLICY.replace(
        'deny: ["team/root-*"]', 'deny: ["team/root-*", "team/late-*"]'
    )
    assert (
        dev_broker.client.put_policy(tokens["admin"], "team", denied).status_code == 200
    )

    response = dev_broker.client.get_secret(tokens["reader"], "team/late-deny")
    dev_broker.client.put_policy(tokens["admin"], "team", POLICY)
    assert response.status_code == 403


def test_invalid_policy_names_document_and_field(
    dev_broker: DevBroker, tokens: dict[str, str]
) -> None:
    document = "services:\n  reader:\n    max_ttl: forever-canary-77\n"

    response = dev_broker.client.put_policy(tokens["admin"], "broken", document)

    assert response.status_code == 400
    description = response.json()["error_description"]
    assert "broken" in description and "max_ttl" in description
    assert "forever-canary-77" not in response.text


def test_dry_run_reports_changes_and_applies_nothing(
    dev_broker: DevBroker, tokens: dict[str, str]
) -> None:
    document = 'services:\n  newcomer:\n    secrets:\n      read: ["team/*"]\n'

    response = dev_broker.client.request(
        "PUT", "policies/newcomer", params={"dry_run": "true"}, content=document,
        headers={"Authorization": f"Bearer {tokens['admin']}",
                 "Content-Type": "application/yaml"},
    )  # fmt: skip

    assert response.status_code == 200
    assert response.json()["changes"]["newcomer"]["added"] == ["secrets:read:team/*"]
    created = dev_broker.client.request(
        "POST", "services/newcomer/credentials",
        headers={"Authorization": f"Bearer {tokens['admin']}"},
    )  # fmt: skip
    assert created.status_code == 404
