"""Every event the real server logs during a request carries the request's id,
found by reading the JSON lines it writes to standard error."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.e2e.conftest import ADMIN_SECRET, DevBroker

pytestmark = pytest.mark.e2e

POLICY = 'services:\n  logged: {secrets: {read: ["logged/*"], write: ["logged/*"]}}\n'


def _events(broker: DevBroker) -> list[dict[str, Any]]:
    found = []
    for line in broker.process.stderr_path.read_text(errors="replace").splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue  # a line that is not an event (there should be none)
    return found


def _logged_under(broker: DevBroker, request_id: str) -> set[str]:
    """The events logged under `request_id`, once its request line is out."""
    deadline = time.monotonic() + 5
    while True:
        mine = [e for e in _events(broker) if e.get("request_id") == request_id]
        if any(e["event"] == "request" for e in mine) or time.monotonic() > deadline:
            return {str(e["event"]) for e in mine}
        time.sleep(0.05)


def _as(request_id: str, token: str | None = None) -> dict[str, str]:
    headers = {"X-Request-Id": request_id}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


@contextmanager
def _audit_table_gone(broker: DevBroker) -> Iterator[None]:
    """The running broker's audit table renamed away under it, then back."""
    database = broker.process.folder / ".tokenbroker" / "state.db"
    connection = sqlite3.connect(database)
    try:
        connection.execute("ALTER TABLE audit_records RENAME TO audit_gone")
        connection.commit()
        yield
    finally:
        connection.execute("ALTER TABLE audit_gone RENAME TO audit_records")
        connection.commit()
        connection.close()


def test_the_token_issued_event_carries_the_request_id(dev_broker: DevBroker) -> None:
    response = dev_broker.client.request(
        "POST", "token", auth=("admin", ADMIN_SECRET),
        data={"grant_type": "client_credentials"}, headers=_as("log-token"),
    )  # fmt: skip

    assert response.status_code == 200
    assert {"token_issued", "request"} <= _logged_under(dev_broker, "log-token")


def test_events_of_work_handed_to_a_thread_carry_the_request_id(
    dev_broker: DevBroker,
) -> None:
    """Applying a policy runs in the thread pool."""
    response = dev_broker.client.request(
        "PUT", "policies/logged", content=POLICY,
        headers={**_as("log-policy", dev_broker.admin_token()),
                 "Content-Type": "application/yaml"},
    )  # fmt: skip

    assert response.status_code == 200
    assert "policy_applied" in _logged_under(dev_broker, "log-policy")


def test_secret_written_and_read_events_carry_their_requests_ids(
    dev_broker: DevBroker,
) -> None:
    token = dev_broker.admin_token()
    client = dev_broker.client

    client.request("PUT", "secrets/logged/db", json={"value": "<logged value>"},
                   headers=_as("log-write", token))  # fmt: skip
    client.request("GET", "secrets/logged/db", headers=_as("log-read", token))

    assert "secret_written" in _logged_under(dev_broker, "log-write")
    assert "secret_read" in _logged_under(dev_broker, "log-read")


def test_a_failed_request_logs_request_failed_under_its_id(
    dev_broker: DevBroker,
) -> None:
    token = dev_broker.admin_token()

    with _audit_table_gone(dev_broker):
        response = dev_broker.client.request(
            "GET", "secrets/logged/db", headers=_as("log-failed", token)
        )

    assert response.status_code == 503
    assert "request_failed" in _logged_under(dev_broker, "log-failed")


def test_events_outside_a_request_carry_no_request_id(dev_broker: DevBroker) -> None:
    ready = next(e for e in _events(dev_broker) if e["event"] == "broker_ready")

    assert "request_id" not in ready
