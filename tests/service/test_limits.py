"""Rate limits: failed client authentications, and a policy's cap on a service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from policies.rates import Rate
from service.limits import Buckets
from tests.service.conftest import FakeClock
from tests.service.harness import LocalBroker, local_broker

LIMITS = {"failed_auth_per_client": "3/m", "failed_auth_per_address": "5/m"}
POLICY = """\
services:
  billing:
    secrets:
      read: ["payments/*"]
    rate_limit: 2/s
  ledger:
    secrets:
      read: ["ledger/*"]
"""
WRONG = "wrong-secret-0123456789abcdef"


@pytest.fixture
def local(tmp_path: Path, clock: FakeClock) -> Iterator[LocalBroker]:
    with local_broker(tmp_path, clock, rate_limits=LIMITS) as broker:
        assert broker.put_policy("dev", "apps", POLICY).status_code == 200
        yield broker


def _fail(local: LocalBroker, client_id: str, times: int) -> None:
    for _ in range(times):
        assert local.token_response("dev", client_id, WRONG).status_code == 401


def test_a_bucket_allows_its_burst_then_asks_to_wait(clock: FakeClock) -> None:
    buckets = Buckets(clock)
    rate = Rate.parse("2/s")

    taken = [buckets.take("k", rate) for _ in range(3)]

    assert taken[:2] == [0.0, 0.0] and taken[2] == pytest.approx(0.5)


def test_a_bucket_refills_as_time_passes(clock: FakeClock) -> None:
    buckets = Buckets(clock)
    rate = Rate.parse("1/m")
    buckets.take("k", rate)

    clock.advance(60)

    assert buckets.take("k", rate) == 0.0


def test_failed_authentications_of_one_client_are_answered_429_with_retry_after(
    local: LocalBroker,
) -> None:
    _fail(local, "billing", 3)

    response = local.token_response("dev", "billing", WRONG)

    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1


def test_a_throttled_client_is_refused_even_with_its_right_secret(
    local: LocalBroker,
) -> None:
    secret = local.credential("dev", "billing")
    _fail(local, "billing", 3)

    assert local.token_response("dev", "billing", secret).status_code == 429


def test_a_throttled_client_recovers_once_the_window_has_passed(
    local: LocalBroker, clock: FakeClock
) -> None:
    secret = local.credential("dev", "billing")
    _fail(local, "billing", 3)

    clock.advance(60)

    assert local.token_response("dev", "billing", secret).status_code == 200


def test_failures_from_one_address_are_limited_across_client_ids(
    local: LocalBroker,
) -> None:
    for client_id in ("a1", "a2", "a3", "a4", "a5"):
        _fail(local, client_id, 1)

    response = local.token_response("dev", "ledger", WRONG)

    assert response.status_code == 429


def test_another_address_is_not_limited_by_the_first(local: LocalBroker) -> None:
    for client_id in ("a1", "a2", "a3", "a4", "a5"):
        _fail(local, client_id, 1)

    response = local.call(
        "POST", "/v1/dev/token", client=("198.51.100.7", 1234),
        auth=("ledger", WRONG), data={"grant_type": "client_credentials"},
    )  # fmt: skip

    assert response.status_code == 401


def test_a_throttled_attempt_is_audited(local: LocalBroker) -> None:
    _fail(local, "billing", 3)
    local.token_response("dev", "billing", WRONG)

    record = local.audit_records("dev")[-1]

    assert (record["action"], record["outcome"]) == ("auth.client", "throttled")


def test_a_service_over_its_policy_rate_is_answered_429(local: LocalBroker) -> None:
    token = local.token("dev", "billing", local.credential("dev", "billing"))

    statuses = [
        local.call(
            "GET", "/v1/dev/secrets/payments/x", headers=local.bearer(token)
        ).status_code
        for _ in range(3)
    ]

    assert statuses[-1] == 429


def test_a_service_under_its_policy_rate_again_is_served(
    local: LocalBroker, clock: FakeClock
) -> None:
    token = local.token("dev", "billing", local.credential("dev", "billing"))
    for _ in range(3):
        local.call("GET", "/v1/dev/secrets/payments/x", headers=local.bearer(token))

    clock.advance(1)
    response = local.call(
        "GET", "/v1/dev/secrets/payments/x", headers=local.bearer(token)
    )

    assert response.status_code == 404


def test_a_service_without_a_rate_limit_is_not_capped(local: LocalBroker) -> None:
    token = local.token("dev", "ledger", local.credential("dev", "ledger"))

    statuses = {
        local.call(
            "GET", "/v1/dev/secrets/ledger/x", headers=local.bearer(token)
        ).status_code
        for _ in range(10)
    }

    assert statuses == {404}
