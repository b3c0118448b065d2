"""Break-glass for a compromised service: shut out on every replica, its
credentials gone, and a report of every secret and version it read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.compromise_setup import (
    ENV,
    LEDGER,
    LEDGER_VALUE,
    SECRET,
    VALUE,
    Node,
    nodes,
    store,  # noqa: F401
)
from tests.service.conftest import FakeClock


@pytest.fixture
def pair(
    tmp_path: Path,
    clock: FakeClock,
    store: str,  # noqa: F811
) -> Iterator[list[Node]]:
    with nodes(tmp_path, clock, 2, store=store) as both:
        yield both


def test_a_compromised_service_gets_no_new_token_from_any_replica(
    pair: list[Node], clock: FakeClock
) -> None:
    one, two = pair

    answer = one.break_glass("billing-api")
    two.catch_up()
    clock.advance(1)

    assert answer.status_code == 200, answer.text
    for node in pair:
        refused = node.token_response("billing-api")
        assert (refused.status_code, refused.json()["error"]) == (401, "invalid_client")


def test_its_tokens_fail_on_every_replica(pair: list[Node]) -> None:
    one, two = pair
    tokens = [node.token("billing-api") for node in pair]
    bystander = two.token("checkout-api")

    one.break_glass("billing-api")
    two.catch_up()

    assert [node.read(token).status_code for node in pair for token in tokens] == [
        401
    ] * 4
    assert two.read(bystander).status_code == 200


def test_its_credentials_are_revoked_so_enabling_it_needs_a_new_one(
    pair: list[Node], clock: FakeClock
) -> None:
    one, _ = pair
    body = one.break_glass("billing-api").json()
    one.admin("POST", "services/billing-api/enable")
    clock.advance(1)

    old = one.token_response("billing-api")
    new_secret = one.local.credential(ENV, "billing-api")

    assert len(body["credentials_revoked"]) == 1
    assert old.status_code == 401
    assert one.local.token_response(ENV, "billing-api", new_secret).status_code == 200


def test_the_report_lists_what_it_read_within_the_window_on_every_replica(
    pair: list[Node], clock: FakeClock
) -> None:
    one, two = pair
    one.read(one.token("billing-api"))
    clock.advance(3 * 86400)
    one.admin("PUT", f"secrets/{SECRET}", json={"value": "sk-newer"})
    token = two.token("billing-api")
    two.read(token)
    two.read(token)

    answered = one.break_glass("billing-api", window="1d").json()
    two.catch_up()
    again = one.admin("GET", f"compromises/{answered['id']}").json()

    assert answered["reads"] == []
    assert [(r["secret"], r["version"], r["reads"]) for r in again["reads"]] == [
        (SECRET, "2", 2)
    ]
    assert again["since"] is not None and again["window_seconds"] == 86400


def test_rotate_replaces_every_secret_it_read_with_one_result_each(
    pair: list[Node],
) -> None:
    one, _ = pair
    one.read(one.token("billing-api"))
    ledger = one.token("ledger-api")
    one.read(ledger, LEDGER)

    body = one.break_glass("ledger-api", rotate=True).json()

    [result] = body["rotations"]
    assert (result["secret"], result["status"]) == (LEDGER, "rotated")
    fresh = one.read(one.token("checkout-api")).json()
    assert fresh["value"] == VALUE
    assert one.read(one.admin_token(), LEDGER).json()["value"] != LEDGER_VALUE
    assert one.read(one.admin_token(), LEDGER, version="1").status_code == 410


def test_an_admin_cannot_declare_its_own_service_compromised(pair: list[Node]) -> None:
    one, _ = pair

    answer = one.break_glass("admin")

    assert answer.status_code == 409
    assert one.admin("GET", "compromises").json()["compromises"] == []


def test_break_glass_for_a_service_nobody_knows_is_not_found(
    pair: list[Node],
) -> None:
    """A typo must not look like a break-glass done."""
    one, _ = pair

    answer = one.break_glass("biling-api")

    assert (answer.status_code, answer.json()["error"]) == (404, "not_found")
    assert one.admin("GET", "compromises").json()["compromises"] == []


def test_break_glass_reaches_a_service_no_policy_names_any_more(
    pair: list[Node],
) -> None:
    """Its credential may still hold tokens: it is shut out all the same."""
    one, _ = pair
    one.local.put_policy(ENV, "old", "services:\n  old-api: {}\n")
    one.local.credential(ENV, "old-api")
    assert one.admin("DELETE", "policies/old").status_code == 204

    answer = one.break_glass("old-api")

    assert answer.status_code == 200, answer.text
    assert answer.json()["service"] == "old-api"
    assert len(answer.json()["credentials_revoked"]) == 1


def test_break_glass_needs_an_admin(pair: list[Node]) -> None:
    one, _ = pair
    token = one.token("responder")

    answer = one.local.call(
        "POST", f"/v1/{ENV}/services/billing-api/compromise",
        json={"reason": "x"}, headers=one.local.bearer(token),
    )  # fmt: skip

    assert answer.status_code == 403
    assert one.read(one.token("billing-api")).status_code == 200


def test_break_glass_is_audited_with_each_step(pair: list[Node]) -> None:
    one, _ = pair

    body = one.break_glass("billing-api").json()

    records = one.local.audit_records(ENV)
    actions = [(r["action"], r["outcome"]) for r in records]
    start = actions.index(("service.compromise", "requested"))
    assert [a for a in actions[start:] if a[1] != "requested"] == [
        ("service.revoke", "ok"),
        ("service.disable", "ok"),
        ("credential.revoke", "ok"),
        ("service.compromise", "ok"),
    ]
    assert records[-1]["detail"]["compromise_id"] == body["id"]


def test_no_value_or_token_is_in_the_break_glass_report(pair: list[Node]) -> None:
    one, _ = pair
    token = one.token("billing-api")
    one.read(token)

    body = one.break_glass("billing-api", rotate=True)

    written = body.text + json.dumps(one.local.audit_records(ENV))
    for canary in (VALUE, token, *one.secrets.values()):
        assert canary not in written
