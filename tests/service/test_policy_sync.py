"""A policy applied through one broker is served by every broker on the store:
by the poll on every database, by the push on PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.compromise_setup import (
    ENV,
    LEDGER,
    POLICY,
    PUSH_DEADLINE_SECONDS,
    Node,
    nodes,
    postgres_store,  # noqa: F401
    store,  # noqa: F401
    wait_for_listener,
)
from tests.service.conftest import FakeClock

WIDER = POLICY.replace('{read: ["ledger/*"]}', '{read: ["ledger/*", "payments/*"]}')
EXTRA = 'services:\n  billing-api: {secrets: {read: ["ledger/*"]}}\n'


@pytest.fixture
def pair(
    tmp_path: Path,
    clock: FakeClock,
    store: str,  # noqa: F811
) -> Iterator[list[Node]]:
    with nodes(tmp_path, clock, 2, store=store) as both:
        yield both


def test_a_policy_applied_through_one_broker_is_served_by_the_other_after_a_poll(
    pair: list[Node],
) -> None:
    one, two = pair
    assert WIDER != POLICY

    one.local.put_policy(ENV, "services", WIDER)
    refused = two.token_response("ledger-api", scope="secrets:read:payments/*")
    two.catch_up()

    assert refused.json()["error"] == "invalid_scope"
    allowed = two.token("ledger-api", scope="secrets:read:payments/*")
    assert two.read(allowed).status_code == 200


def test_a_deleted_policy_document_is_dropped_by_the_other_broker(
    pair: list[Node],
) -> None:
    one, two = pair
    one.local.put_policy(ENV, "extra", EXTRA)
    two.catch_up()
    token = two.token("billing-api")
    assert two.read(token, LEDGER).status_code == 200

    one.admin("DELETE", "policies/extra")
    two.catch_up()

    assert two.read(token, LEDGER).status_code == 403


def test_a_broker_reloads_only_when_the_policy_changed(pair: list[Node]) -> None:
    one, two = pair
    assert two.broker.policy_sync.poll() == 0

    one.local.put_policy(ENV, "services", WIDER)

    assert two.broker.policy_sync.poll() == 1
    assert two.broker.policy_sync.poll() == 0


def test_a_policy_change_is_pushed_to_the_other_broker_without_a_poll(
    tmp_path: Path,
    clock: FakeClock,
    postgres_store: str,  # noqa: F811
) -> None:
    """LISTEN/NOTIFY: with polling slowed to a minute, the push alone arrives."""
    slow = {"poll_seconds": 60, "lookback_seconds": 0}
    with nodes(tmp_path, clock, 2, store=postgres_store, revocation=slow) as (one, two):
        environment = two.broker.environments[ENV]
        before = environment.policy
        two.broker.revocations.start()
        try:
            wait_for_listener(two)
            one.local.put_policy(ENV, "services", WIDER)
            deadline = time.monotonic() + PUSH_DEADLINE_SECONDS
            while environment.policy is before:
                assert time.monotonic() < deadline, "the push never arrived"
                time.sleep(0.01)
        finally:
            two.broker.revocations.stop()

    assert environment.policy.decide("ledger-api", "read", "payments/x").allowed
