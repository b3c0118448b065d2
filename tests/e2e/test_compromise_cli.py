"""`tokenbroker secret compromise` and `tokenbroker service compromise` against
a real broker."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import DevBroker
from tests.e2e.test_cli import tokenbroker

pytestmark = pytest.mark.e2e

POLICY = """\
services:
  billing-api: {secrets: {read: ["payments/*"]}}
  ledger-api: {secrets: {read: ["ledger/*"]}}
"""


@pytest.fixture(scope="module")
def readers(dev_broker: DevBroker) -> dict[str, str]:
    """The policy, two secrets, and a token of each service that read its own."""
    client = dev_broker.client
    admin = dev_broker.admin_token()
    assert client.put_policy(admin, "readers", POLICY).status_code == 200
    tokens = {}
    read = {"billing-api": "payments/stripe", "ledger-api": "ledger/db"}
    for service, secret in read.items():
        assert client.put_secret(admin, secret, {"value": "v1"}).status_code == 200
        token = client.access_token(service, client.new_credential(admin, service))
        assert client.get_secret(token, secret).status_code == 200
        tokens[service] = token
    return tokens


def test_secret_compromise_prints_who_read_it_and_what_replaced_it(
    dev_broker: DevBroker, readers: dict[str, str]
) -> None:
    done = tokenbroker(
        dev_broker, "secret", "compromise", "payments/stripe", "--reason", "leaked"
    )

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "payments/stripe: version 1 contained; new version 2"
    assert lines[1].startswith("  read by billing-api: 1 reads, last ")
    assert "  tokens revoked: 1" in lines
    reread = dev_broker.client.get_secret(readers["billing-api"], "payments/stripe")
    assert reread.status_code == 401


def test_secret_compromise_needs_a_reason(dev_broker: DevBroker) -> None:
    done = tokenbroker(dev_broker, "secret", "compromise", "payments/stripe")

    assert done.returncode == 2
    assert "--reason" in done.stderr


def test_service_compromise_prints_what_it_read_and_rotates_it(
    dev_broker: DevBroker, readers: dict[str, str]
) -> None:
    done = tokenbroker(
        dev_broker, "service", "compromise", "ledger-api", "--reason", "host lost",
        "--rotate", "--json",
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [(r["secret"], r["version"], r["reads"]) for r in report["reads"]] == [
        ("ledger/db", "1", 1)
    ]
    assert [(r["secret"], r["status"]) for r in report["rotations"]] == [
        ("ledger/db", "rotated")
    ]
    again = tokenbroker(dev_broker, "secret", "get", "ledger/db", "--version", "1")
    assert again.returncode == 1
