"""`serve --policies DIR` applies a folder of policy files at start."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.broker_process import BrokerProcess
from tests.e2e.client import BrokerClient

ADMIN_SECRET = "policy-folder-admin-secret"


def test_policy_files_are_applied_and_named_after_their_files(tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "billing.yaml").write_text(
        "services:\n  billing-api:\n    secrets:\n      read: ['payments/*']\n"
    )
    (folder / "ledger.json").write_text(
        '{"services": {"ledger-api": {"secrets": {"read": ["ledger/*"]}}}}'
    )
    (folder / "notes.txt").write_text("not a policy")
    broker = BrokerProcess(
        tmp_path,
        ["--dev", "--dev-admin-secret", ADMIN_SECRET, "--policies", str(folder)],
        {},
    )
    client = BrokerClient(broker.url)
    try:
        admin = client.access_token("admin", ADMIN_SECRET)
        listed = client.request(
            "GET", "policies", headers={"Authorization": f"Bearer {admin}"}
        ).json()
        secret = client.new_credential(admin, "billing-api")
        granted = client.token("billing-api", secret, scope="secrets:read:payments/x")
    finally:
        client.close()
        broker.stop()

    names = {entry["name"] for entry in listed["policies"]}
    assert names == {"billing", "ledger", "bootstrap-admin"}
    assert granted.status_code == 200


def test_an_invalid_policy_file_stops_start_up_naming_it(tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    broken = "services:\n  billing-api:\n    max_ttl: soon\n"
    (folder / "broken.yaml").write_text(broken)

    try:
        BrokerProcess(tmp_path, ["--dev", "--policies", str(folder)], {})
    except RuntimeError as error:
        message = str(error)
    else:
        raise AssertionError("the broker started with an invalid policy file")

    assert "broken" in message
    assert "max_ttl" in message
