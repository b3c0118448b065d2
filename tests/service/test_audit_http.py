"""Every access and refusal of the API is an audit record, committed first."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.service.conftest import FakeClock
from tests.service.harness import CLIENT, LocalBroker, local_broker

POLICY = """\
services:
  billing:
    secrets:
      read: ["payments/*"]
      write: ["payments/*"]
"""


@pytest.fixture
def local(tmp_path: Path, clock: FakeClock) -> Iterator[LocalBroker]:
    with local_broker(tmp_path, clock) as broker:
        assert broker.put_policy("dev", "billing", POLICY).status_code == 200
        yield broker


def _billing_token(local: LocalBroker, **form: str) -> str:
    return local.token("dev", "billing", local.credential("dev", "billing"), **form)


def _last(local: LocalBroker, action: str) -> dict[str, Any]:
    return [r for r in local.audit_records("dev") if r["action"] == action][-1]


def _write(local: LocalBroker, token: str, name: str, value: str) -> None:
    response = local.call(
        "PUT", f"/v1/dev/secrets/{name}", json={"value": value},
        headers=local.bearer(token),
    )  # fmt: skip
    assert response.status_code == 200, response.text


def test_a_secret_read_is_recorded_with_who_what_version_request_and_source(
    local: LocalBroker,
) -> None:
    token = _billing_token(local)
    _write(local, token, "payments/stripe", "sk_example")

    response = local.call(
        "GET", "/v1/dev/secrets/payments/stripe",
        headers={**local.bearer(token), "X-Request-Id": "req-42"},
    )  # fmt: skip

    record = _last(local, "secret.read")
    assert response.status_code == 200
    assert (record["actor"], record["target"], record["version"]) == (
        "billing", "payments/stripe", "1",
    )  # fmt: skip
    assert (record["request_id"], record["source"]) == ("req-42", CLIENT[0])


def test_a_token_issue_is_recorded_with_its_jti_and_never_the_token(
    local: LocalBroker,
) -> None:
    secret = local.credential("dev", "billing")

    issued = local.token_response("dev", "billing", secret).json()

    record = _last(local, "token.issue")
    assert record["actor"] == "billing" and record["outcome"] == "ok"
    assert record["detail"]["jti"]
    assert issued["access_token"] not in json.dumps(record)


def test_a_failed_client_authentication_is_recorded(local: LocalBroker) -> None:
    local.credential("dev", "billing")

    response = local.token_response("dev", "billing", "not-the-secret-0123456789")

    record = _last(local, "auth.client")
    assert response.status_code == 401
    assert (record["actor"], record["outcome"]) == ("billing", "refused")


def test_an_unknown_client_id_is_recorded_only_as_a_fingerprint(
    local: LocalBroker,
) -> None:
    pasted = f"tbs_{uuid.uuid4().hex}"

    local.token_response("dev", pasted, pasted)

    record = _last(local, "auth.client")
    assert record["actor"] is None
    assert record["detail"]["unknown_client_sha256"]
    assert pasted not in json.dumps(record)


def test_a_read_outside_the_token_scope_is_recorded_as_denied(
    local: LocalBroker,
) -> None:
    token = _billing_token(local)

    response = local.call(
        "GET", "/v1/dev/secrets/payroll/db", headers=local.bearer(token)
    )

    record = _last(local, "secret.read")
    assert response.status_code == 403
    assert (record["outcome"], record["target"]) == ("denied", "payroll/db")


def test_a_request_without_a_valid_token_is_recorded_as_refused(
    local: LocalBroker,
) -> None:
    local.call("GET", "/v1/dev/secrets/payments/x", headers=local.bearer("x.y.z"))

    record = _last(local, "secret.read")
    assert (record["outcome"], record["detail"]["error"]) == (
        "refused", "invalid_token",
    )  # fmt: skip


def test_a_read_fails_with_503_and_no_value_when_its_record_cannot_be_committed(
    local: LocalBroker,
) -> None:
    token = _billing_token(local)
    _write(local, token, "payments/stripe", "sk_unrecorded_value")
    with local.broker.engine.begin() as connection:
        connection.execute(text("ALTER TABLE audit_records RENAME TO gone"))

    response = local.call(
        "GET", "/v1/dev/secrets/payments/stripe", headers=local.bearer(token)
    )

    assert response.status_code == 503
    assert response.json()["error"] == "audit_unavailable"
    assert "sk_unrecorded_value" not in response.text


def test_a_policy_change_is_recorded_with_its_revision(local: LocalBroker) -> None:
    local.put_policy("dev", "billing", POLICY + "    max_ttl: 10m\n")

    record = _last(local, "policy.apply")

    assert (record["target"], record["version"]) == ("billing", "2")
    assert record["detail"]["changes"] == {
        "billing": {"added": ["max_ttl:10m"], "removed": []}
    }


def test_a_policy_deletion_is_recorded(local: LocalBroker) -> None:
    admin = local.bearer(local.admin_token("dev"))

    local.call("DELETE", "/v1/dev/policies/billing", headers=admin)

    assert _last(local, "policy.delete")["target"] == "billing"


def test_a_new_credential_is_recorded_without_its_secret(local: LocalBroker) -> None:
    secret = local.credential("dev", "billing")

    record = _last(local, "credential.create")

    assert record["target"] == "billing"
    assert secret not in json.dumps(record)


def test_no_audit_record_holds_a_secret_value_client_secret_or_token(
    local: LocalBroker,
) -> None:
    value = f"canary-value-{uuid.uuid4().hex}"
    secret = local.credential("dev", "billing")
    token = local.token("dev", "billing", secret)
    _write(local, token, "payments/canary", value)
    local.call("GET", "/v1/dev/secrets/payments/canary", headers=local.bearer(token))
    local.token_response("dev", "billing", f"wrong-{secret}")
    local.call("GET", "/v1/prod/secrets/payments/canary", headers=local.bearer(token))
    local.call("GET", "/v1/dev/secrets/payroll/x", headers=local.bearer(token))

    exported = json.dumps(local.audit_records("dev") + local.audit_records("prod"))

    leaks = [canary for canary in (value, secret, token) if canary in exported]
    assert leaks == []


def test_the_export_endpoint_streams_one_json_record_per_line(
    local: LocalBroker,
) -> None:
    admin = local.bearer(local.admin_token("dev"))

    response = local.call("GET", "/v1/dev/audit", headers=admin)

    lines = [json.loads(line) for line in response.text.splitlines()]
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))


def test_the_verify_endpoint_answers_intact(local: LocalBroker) -> None:
    admin = local.bearer(local.admin_token("dev"))

    answer = local.call("GET", "/v1/dev/audit/verify", headers=admin).json()

    assert answer["intact"] is True and answer["broken_seq"] is None


def test_reading_the_audit_needs_admin(local: LocalBroker) -> None:
    token = _billing_token(local)

    response = local.call("GET", "/v1/dev/audit", headers=local.bearer(token))

    assert response.status_code == 403
