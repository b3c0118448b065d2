"""Secret compromise through the API: one call replaces and disables the
version, revokes the tokens that read it, and answers who was exposed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.rotation.generators import ALPHABETS, RandomGenerator, RotationContext
from service.sensitive import Sensitive
from tests.rotation.upstream import Upstream, fingerprint
from tests.service.compromise_setup import (
    ENV,
    HELD,
    LEDGER,
    SECRET,
    VALUE,
    Node,
    hold_rotations,
    nodes,
    store,  # noqa: F401
)
from tests.service.conftest import FakeClock

UPSTREAM_POLICY = """\
services:
  checkout-api: {secrets: {read: ["payments/*"]}}
secrets:
  payments/upstream:
    rotation: {every: 30d, generator: {type: http, endpoint: minter}, grace: 1h}
"""


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    running = Upstream(tmp_path_factory.mktemp("upstream"))
    yield running
    running.stop()


@pytest.fixture
def node(
    tmp_path: Path,
    clock: FakeClock,
    store: str,  # noqa: F811
) -> Iterator[Node]:
    with nodes(tmp_path, clock, store=store) as (one,):
        yield one


def test_the_current_version_is_replaced_at_once_and_disabled(node: Node) -> None:
    """Case C03's emergency: no grace, the old version reads as gone."""
    reader = node.token("checkout-api")
    before = node.read(reader).json()["version"]

    answer = node.compromise()

    body = answer.json()
    assert answer.status_code == 200, answer.text
    assert (body["state"], body["version"], body["grace_skipped"]) == (
        "contained", before, True,
    )  # fmt: skip
    fresh = node.read(node.token("checkout-api"))
    assert fresh.json()["version"] == body["new_version"] != before
    assert fresh.json()["value"] != VALUE
    assert node.read(node.token("checkout-api"), version=before).status_code == 410
    assert node.read(node.token("checkout-api"), stage="previous").status_code == 410


def test_tokens_that_read_the_version_are_revoked_and_no_others(node: Node) -> None:
    reader = node.token("billing-api")
    other_reader = node.token("checkout-api")
    idle = node.token("billing-api")
    bystander = node.token("ledger-api")
    node.read(reader)
    node.read(other_reader)
    node.read(bystander, LEDGER)

    node.compromise()

    assert node.read(reader).status_code == 401
    assert node.read(other_reader).status_code == 401
    assert node.read(idle).status_code == 200
    assert node.read(bystander, LEDGER).status_code == 200


def test_the_report_lists_every_reader_with_first_and_last_read_and_count(
    node: Node, clock: FakeClock
) -> None:
    reader = node.token("billing-api")
    node.read(reader)
    clock.advance(30)
    node.read(reader)
    node.read(reader)
    node.read(node.token("checkout-api"))

    body = node.compromise().json()

    services = {entry["service"]: entry for entry in body["services"]}
    assert {name: entry["reads"] for name, entry in services.items()} == {
        "billing-api": 3, "checkout-api": 1,
    }  # fmt: skip
    first, last = (
        services["billing-api"]["first_read_at"],
        services["billing-api"]["last_read_at"],
    )
    assert _seconds(last) - _seconds(first) == 30


def test_the_report_names_the_tokens_it_revoked_by_id(node: Node) -> None:
    reader = node.token("billing-api")
    node.read(reader)
    jti = node.broker.environments[ENV].tokens.verify(reader).jti

    body = node.compromise().json()

    assert [(t["jti"], t["service"]) for t in body["tokens_revoked"]] == [
        (jti, "billing-api")
    ]
    assert body["services_revoked"] == []


def test_the_report_is_kept_and_can_be_read_again_and_listed(node: Node) -> None:
    node.read(node.token("billing-api"))
    answer = node.compromise()
    body = answer.json()

    again = node.admin("GET", f"compromises/{body['id']}")
    listed = node.admin("GET", "compromises", params={"secret": SECRET})

    assert answer.headers["location"] == f"/v1/{ENV}/compromises/{body['id']}"
    assert again.status_code == 200
    assert again.json() == body
    assert [entry["id"] for entry in listed.json()["compromises"]] == [body["id"]]


def test_a_version_that_is_not_current_is_disabled_without_a_rotation(
    node: Node,
) -> None:
    old = node.read(node.token("checkout-api")).json()["version"]
    rotated = node.admin("POST", f"secrets/{SECRET}/rotate")
    current = rotated.json()["new_version"]

    body = node.compromise(version=old).json()

    assert (body["state"], body["rotation"], body["current_version"]) == (
        "contained", None, current,
    )  # fmt: skip
    assert node.read(node.token("checkout-api"), version=old).status_code == 410
    assert node.read(node.token("checkout-api")).json()["version"] == current


def test_declaring_a_compromise_needs_the_revoke_scope(node: Node) -> None:
    reader = node.token("billing-api")
    version = node.read(reader).json()["version"]

    refused = node.compromise(token=reader)
    allowed = node.compromise(token=node.token("responder"))

    assert refused.status_code == 403
    assert allowed.status_code == 200
    assert allowed.json()["version"] == version


def test_a_version_the_store_does_not_know_is_not_found(node: Node) -> None:
    answer = node.compromise(version="999")

    assert answer.status_code == 404
    assert node.admin("GET", "compromises").json()["compromises"] == []


def test_a_compromise_without_a_reason_is_refused(node: Node) -> None:
    answer = node.admin("POST", f"secrets/{SECRET}/compromise", json={})

    assert answer.status_code == 400
    assert node.read(node.token("checkout-api")).json()["value"] == VALUE


def test_only_an_admin_or_a_revoker_of_the_secret_reads_the_report(
    node: Node,
) -> None:
    body = node.compromise().json()
    path = f"/v1/{ENV}/compromises/{body['id']}"

    def read_as(service: str) -> int:
        token = node.token(service)
        return node.local.call(
            "GET", path, headers=node.local.bearer(token)
        ).status_code

    assert (read_as("responder"), read_as("billing-api")) == (200, 404)


def test_the_compromise_is_audited_intent_first_with_every_revocation(
    node: Node,
) -> None:
    reader = node.token("billing-api")
    node.read(reader)
    jti = node.broker.environments[ENV].tokens.verify(reader).jti

    body = node.compromise().json()

    records = node.local.audit_records(ENV)
    actions = [(r["action"], r["outcome"]) for r in records]
    intent = actions.index(("secret.compromise", "requested"))
    assert actions.index(("rotation.create", "started")) > intent
    assert actions[-1] == ("secret.compromise", "ok")
    assert records[-1]["detail"]["compromise_id"] == body["id"]
    [retired] = [r for r in records if r["action"] == "rotation.retire"
                 and r["outcome"] == "done"]  # fmt: skip
    assert retired["version"] == body["version"]
    assert retired["detail"]["no_grace"] is True
    [revoked] = [r for r in records if r["action"] == "token.revoke"]
    assert revoked["detail"]["jtis"] == [jti]


def test_the_compromise_and_its_revocations_are_sent_as_events(node: Node) -> None:
    events: list[dict[str, Any]] = []
    node.broker.compromise.publish = events.append
    node.broker.revocations.publish = events.append
    node.read(node.token("billing-api"))

    body = node.compromise().json()

    types = [event["type"] for event in events]
    assert types == ["tokenbroker.revocation.tokens", "tokenbroker.compromise.secret"]
    data = events[-1]["data"]
    assert (data["id"], data["services"], data["tokens_revoked"]) == (body["id"], 1, 1)


def test_no_value_or_token_is_in_the_report_or_the_audit(node: Node) -> None:
    """Canary: the value and the tokens that read it appear nowhere."""
    readers = [node.token("billing-api"), node.token("checkout-api")]
    for token in readers:
        node.read(token)

    answer = node.compromise()
    again = node.admin("GET", f"compromises/{answer.json()['id']}")

    written = answer.text + again.text + json.dumps(node.local.audit_records(ENV))
    for canary in (VALUE, *readers):
        assert canary not in written


def test_an_upstream_credential_is_revoked_upstream_before_the_answer(
    tmp_path: Path, clock: FakeClock, upstream: Upstream
) -> None:
    """The `http` generator's /revoke is called for the compromised value."""
    endpoint = {"url": upstream.url, "hmac_key_file": str(upstream.key_file),
                "ca_file": str(upstream.ca_file), "retries": 0}  # fmt: skip
    rotation = {"endpoints": {"minter": endpoint}}
    with nodes(tmp_path, clock, rotation=rotation) as (node,):
        node.local.put_policy(ENV, "upstream", UPSTREAM_POLICY)
        name = "payments/upstream"
        node.admin("PUT", f"secrets/{name}", json={"value": "<PW1>"})
        rotated = node.admin("POST", f"secrets/{name}/rotate").json()
        previous = node.read(node.token("checkout-api"), name).json()["value"]
        upstream.state.revoked.clear()

        body = node.compromise(name).json()
        # Before the broker shuts down: the answer came after the revocation.
        assert [r["fingerprint"] for r in upstream.state.revoked] == [
            fingerprint(previous)
        ]

    assert (body["state"], body["version"]) == ("contained", rotated["new_version"])


def test_parallel_compromises_of_one_version_join_its_emergency_rotation(
    node: Node,
) -> None:
    """Nine more while the first rotates: each keeps a report that ends contained."""
    target = hold_rotations(node)
    compromised = node.read(node.token("checkout-api"), HELD).json()["version"]

    with ThreadPoolExecutor(10) as pool:
        first = pool.submit(node.compromise, HELD)
        target.wait_until_held()
        joined = [pool.submit(node.compromise, HELD) for _ in range(9)]
        while_held = [future.result() for future in joined]
        target.release()
        done = first.result()

    assert [(a.status_code, a.json()["state"]) for a in while_held] == [
        (202, "rotating")
    ] * 9
    assert (done.status_code, done.json()["state"]) == (200, "contained")
    reports = [_report(node, answer) for answer in (done, *while_held)]
    assert {(r["version"], r["state"]) for r in reports} == {(compromised, "contained")}
    assert target.created == 1


def test_a_compromise_during_a_rotation_retires_the_version_when_it_finishes(
    node: Node,
) -> None:
    """The running rotation is told to skip its grace; the report says so."""
    target = hold_rotations(node)
    compromised = node.read(node.token("checkout-api"), HELD).json()["version"]

    with ThreadPoolExecutor(1) as pool:
        rotating = pool.submit(node.admin, "POST", f"secrets/{HELD}/rotate")
        target.wait_until_held()
        answer = node.compromise(HELD)
        target.release()
        rotated = rotating.result().json()

    assert (answer.status_code, answer.json()["rotation"]["id"]) == (202, rotated["id"])
    assert _report(node, answer)["state"] == "contained"
    gone = node.read(node.token("checkout-api"), HELD, version=compromised)
    assert gone.status_code == 410


def test_a_listed_report_stands_as_the_report_read_again(node: Node) -> None:
    """One state for both: the listing too reads the emergency rotation now."""
    target = hold_rotations(node)
    with ThreadPoolExecutor(1) as pool:
        rotating = pool.submit(node.admin, "POST", f"secrets/{HELD}/rotate")
        target.wait_until_held()
        answer = node.compromise(HELD)
        target.release()
        rotating.result()

    again = node.admin("GET", f"compromises/{answer.json()['id']}").json()
    [listed] = node.admin("GET", "compromises", params={"secret": HELD}).json()[
        "compromises"
    ]

    assert answer.json()["state"] == "rotating"
    assert listed["state"] == again["state"] == "contained"


def _report(node: Node, answer: httpx.Response) -> dict[str, Any]:
    """The report an answer named, read again."""
    read = node.admin("GET", f"compromises/{answer.json()['id']}")
    assert read.status_code == 200, read.text
    body: dict[str, Any] = read.json()
    return body


def _seconds(moment: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(moment).timestamp()


PLUGIN_SECRET = "payments/plugin"


class _RevokeFails(RandomGenerator):
    """A plugin whose upstream revocation fails with an error of its own."""

    def revoke(
        self, context: RotationContext, value: Sensitive, ref: str | None
    ) -> None:
        raise RuntimeError("the plugin's upstream is down")


def test_a_generator_that_fails_to_revoke_upstream_still_leaves_the_readers_shut_out(
    node: Node,
) -> None:
    node.broker.rotation.generators.register(
        "revoke-fails", lambda _p, _s: _RevokeFails(24, ALPHABETS["alphanumeric"])
    )
    policy = (
        f"secrets:\n  {PLUGIN_SECRET}:\n    rotation: "
        "{every: 30d, generator: {type: revoke-fails}, grace: 1h}\n"
    )
    assert node.local.put_policy(ENV, "plugin", policy).status_code == 200
    node.admin("PUT", f"secrets/{PLUGIN_SECRET}", json={"value": "first-value"})
    reader = node.token("billing-api")
    old = node.read(reader, PLUGIN_SECRET).json()["version"]
    assert node.admin("POST", f"secrets/{PLUGIN_SECRET}/rotate").status_code == 200

    body = node.compromise(PLUGIN_SECRET, version=old).json()

    assert (body["state"], body["version_disabled"]) == ("failed", False)
    assert "upstream is down" not in json.dumps(body)
    assert node.read(reader, PLUGIN_SECRET).status_code == 401
