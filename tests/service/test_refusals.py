"""A flood of anonymous refusals is bounded in the audit; known callers are not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from service.audit_chain import records
from service.refusals import ACTION
from tests.service.conftest import FakeClock
from tests.service.harness import LocalBroker, local_broker

LOCAL = {"default_backend": "local", "backends": {"local": {"type": "local"}}}
LIMITS = {
    "anonymous_refusals_per_address": "3/m",
    "anonymous_refusals_per_environment": "5/m",
}
POLICY = 'services:\n  billing:\n    secrets:\n      read: ["payments/*"]\n'


@pytest.fixture
def local(tmp_path: Path, clock: FakeClock) -> Iterator[LocalBroker]:
    with local_broker(tmp_path, clock, {"dev": LOCAL}, rate_limits=LIMITS) as broker:
        yield broker


def _bad_token(local: LocalBroker, address: str = "192.0.2.1") -> None:
    response = local.call(
        "GET", "/v1/dev/secrets/payments/db", headers=local.bearer("x.y.z"),
        client=(address, 40000),
    )  # fmt: skip
    assert response.status_code == 401


def _refused(local: LocalBroker) -> list[dict[str, Any]]:
    return [r for r in local.audit_records("dev") if r["outcome"] == "refused"]


def _summaries(local: LocalBroker) -> list[dict[str, Any]]:
    return [r for r in local.audit_records("dev") if r["action"] == ACTION]


def test_anonymous_refusals_past_an_address_rate_get_no_record_each(
    local: LocalBroker,
) -> None:
    for _ in range(10):
        _bad_token(local)

    assert len(_refused(local)) == 3


def test_each_address_has_an_allowance_of_its_own(local: LocalBroker) -> None:
    for _ in range(5):
        _bad_token(local, "192.0.2.1")

    _bad_token(local, "192.0.2.2")

    assert [r["source"] for r in _refused(local)][-1] == "192.0.2.2"


def test_the_environment_as_a_whole_is_bounded_too(local: LocalBroker) -> None:
    for n in range(8):
        _bad_token(local, f"192.0.2.{n}")

    assert len(_refused(local)) == 5


def test_refusals_not_recorded_are_summed_up_once_their_minute_is_over(
    local: LocalBroker, clock: FakeClock
) -> None:
    for _ in range(10):
        _bad_token(local)
    assert local.broker.refusals.flush(local.broker.audit) == 0

    clock.advance(60)
    local.broker.refusals.flush(local.broker.audit)

    [summary] = _summaries(local)
    assert summary["detail"]["refusals"] == 7
    assert summary["detail"]["sources"] == {"192.0.2.1": 7}
    assert summary["detail"]["actions"] == {"secret.read": 7}


def test_a_summary_the_audit_cannot_take_is_recorded_at_the_next_flush(
    local: LocalBroker, clock: FakeClock
) -> None:
    for _ in range(4):
        _bad_token(local)
    clock.advance(60)
    with local.broker.engine.begin() as connection:
        connection.execute(text("ALTER TABLE audit_records RENAME TO audit_gone"))
    assert local.broker.refusals.flush(local.broker.audit) == 0
    with local.broker.engine.begin() as connection:
        connection.execute(text("ALTER TABLE audit_gone RENAME TO audit_records"))

    local.broker.refusals.flush(local.broker.audit)

    assert [s["detail"]["refusals"] for s in _summaries(local)] == [1]


def test_a_closing_broker_records_what_it_counted(
    tmp_path: Path, clock: FakeClock
) -> None:
    with local_broker(tmp_path, clock, {"dev": LOCAL}, rate_limits=LIMITS) as local:
        for _ in range(4):
            _bad_token(local)

    engine = create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    with engine.connect() as connection:
        summaries = [r for r in records(connection, "dev") if r.event.action == ACTION]
    engine.dispose()
    assert [s.event.detail["refusals"] for s in summaries] == [1]


def test_every_refusal_of_a_known_service_is_recorded(local: LocalBroker) -> None:
    assert local.put_policy("dev", "billing", POLICY).status_code == 200
    token = local.token("dev", "billing", local.credential("dev", "billing"))

    for _ in range(10):
        local.call("GET", "/v1/dev/secrets/payroll/db", headers=local.bearer(token))

    denied = [r for r in local.audit_records("dev") if r["outcome"] == "denied"]
    assert len(denied) == 10


def test_every_failed_authentication_of_a_known_client_id_is_recorded(
    local: LocalBroker,
) -> None:
    assert local.put_policy("dev", "billing", POLICY).status_code == 200
    local.credential("dev", "billing")

    for _ in range(8):
        local.token_response("dev", "billing", "not-the-secret-0123456789")

    assert len([r for r in _refused(local) if r["actor"] == "billing"]) == 8
