"""Secret compromise across broker replicas on one store: each hears of it,
drops its cache and revokes the tokens only it saw read the version."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.rotation.token_reads import UNLISTED
from tests.service.compromise_setup import (
    ENV,
    PUSH_DEADLINE_SECONDS,
    SECRET,
    VALUE,
    Node,
    nodes,
    postgres_store,  # noqa: F401
    store,  # noqa: F401
    wait_for_listener,
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


def test_a_token_that_read_through_the_other_replica_is_revoked_once_it_hears(
    pair: list[Node],
) -> None:
    """The other replica alone knew the token had read the version."""
    one, two = pair
    token = two.token()
    two.read(token)

    one.compromise()
    still = one.read(token).status_code
    two.catch_up()
    one.catch_up()

    assert still == 200
    assert one.read(token).status_code == 401
    assert two.read(token).status_code == 401


def test_the_report_read_again_holds_the_reads_only_the_other_replica_had(
    pair: list[Node],
) -> None:
    one, two = pair
    token = two.token("checkout-api")
    jti = two.broker.environments[ENV].tokens.verify(token).jti
    two.read(token)
    two.read(token)
    one.read(one.token("billing-api"))

    answered = one.compromise().json()
    two.catch_up()
    again = one.admin("GET", f"compromises/{answered['id']}").json()

    assert [s["service"] for s in answered["services"]] == ["billing-api"]
    assert {s["service"]: s["reads"] for s in again["services"]} == {
        "billing-api": 1, "checkout-api": 2,
    }  # fmt: skip
    assert jti in {t["jti"] for t in again["tokens_revoked"]}


def test_the_other_replica_no_longer_serves_its_cached_value(
    pair: list[Node],
) -> None:
    """C08-like: a cached copy of the compromised version is dropped."""
    one, two = pair
    reader = two.token("checkout-api")
    assert two.read(reader).json()["value"] == VALUE

    one.compromise()
    two.catch_up()
    fresh = two.read(two.token("checkout-api"))

    assert fresh.status_code == 200
    assert fresh.json()["value"] != VALUE


def test_a_read_flushed_after_the_replica_heard_is_swept_on_its_next_poll(
    pair: list[Node],
) -> None:
    """A read in flight when the version was disabled still loses its token."""
    one, two = pair
    version = one.read(one.token("checkout-api")).json()["version"]
    straggler = two.token()
    principal = two.broker.environments[ENV].tokens.verify(straggler)
    one.compromise()
    two.catch_up()

    two.broker.rotation.consumers.record(ENV, SECRET, version, principal)
    two.broker.rotation.consumers.flush()
    two.catch_up()
    one.catch_up()

    assert one.read(straggler).status_code == 401


def test_tokens_past_the_tracking_limit_are_revoked_by_service_watermark(
    pair: list[Node], clock: FakeClock
) -> None:
    """When a process could not list every token, the service's all go."""
    one, two = pair
    two.broker.rotation.consumers.tokens.max_pending = 1
    first, second = two.token(), two.token("checkout-api")
    two.read(first)
    two.read(second)
    clock.advance(2)

    one.compromise()
    two.catch_up()
    one.catch_up()
    report = one.admin("GET", "compromises").json()["compromises"][0]
    body = one.admin("GET", f"compromises/{report['id']}").json()

    assert [s["service"] for s in body["services_revoked"]] == ["checkout-api"]
    assert UNLISTED not in {t["jti"] for t in body["tokens_revoked"]}
    assert (one.read(first).status_code, one.read(second).status_code) == (401, 401)
    clock.advance(1)  # past the watermark's second
    assert one.read(one.token("checkout-api")).status_code == 200


def test_the_announcement_is_pushed_to_the_other_replica_without_a_poll(
    tmp_path: Path,
    clock: FakeClock,
    postgres_store: str,  # noqa: F811
) -> None:
    """LISTEN/NOTIFY: with polling slowed to a minute, the push alone arrives."""
    slow = {"poll_seconds": 60, "lookback_seconds": 0}
    with nodes(tmp_path, clock, 2, store=postgres_store, revocation=slow) as (one, two):
        token = two.token()
        two.read(token)
        for node in (one, two):
            node.broker.revocations.start()
        try:
            wait_for_listener(two)
            one.compromise()
            deadline = time.monotonic() + PUSH_DEADLINE_SECONDS
            while one.read(token).status_code == 200:
                assert time.monotonic() < deadline, "the push never arrived"
                time.sleep(0.01)
        finally:
            for node in (one, two):
                node.broker.revocations.stop()
