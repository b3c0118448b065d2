"""Environments in one real broker process: a dev token gets nothing from prod."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.broker_process import BrokerProcess, run_cli
from tests.e2e.client import BrokerClient
from tests.e2e.configured import Configured, start, write_config

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def configured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Configured]:
    found = start(tmp_path_factory.mktemp("environments"))
    try:
        yield found
    finally:
        found.process.stop()


@pytest.fixture
def clients() -> Iterator[list[BrokerClient]]:
    """Clients the test opens, closed after it."""
    opened: list[BrokerClient] = []
    yield opened
    for client in opened:
        client.close()


def _client(
    opened: list[BrokerClient], configured: Configured, env: str
) -> BrokerClient:
    client = BrokerClient(configured.process.url, env)
    opened.append(client)
    return client


def _exported(configured: Configured, env: str) -> list[dict[str, Any]]:
    done = run_cli(
        configured.config.parent, "audit", "export", "--config",
        str(configured.config), "--env", env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_a_dev_token_is_refused_by_prod_and_audited_there_as_cross_environment(
    configured: Configured, clients: list[BrokerClient]
) -> None:
    dev = _client(clients, configured, "dev")
    token = dev.access_token("admin", configured.admin_secrets["dev"])

    response = dev.request(
        "GET", "/v1/prod/secrets/app/db", headers={"Authorization": f"Bearer {token}"}
    )

    refused = [r for r in _exported(configured, "prod") if r["outcome"] == "refused"]
    assert response.status_code == 401
    assert refused[-1]["detail"]["cross_environment"] is True
    assert refused[-1]["detail"]["claimed_env"] == "dev"


def test_a_dev_client_credential_gets_no_prod_token(
    configured: Configured, clients: list[BrokerClient]
) -> None:
    prod = _client(clients, configured, "prod")

    response = prod.token("admin", configured.admin_secrets["dev"])

    assert response.status_code == 401


def test_a_process_pinned_to_prod_has_no_dev(
    tmp_path: Path, clients: list[BrokerClient]
) -> None:
    pinned = start(tmp_path, "--env", "prod")
    try:
        dev = _client(clients, pinned, "dev")
        response = dev.token("admin", pinned.admin_secrets["dev"])
    finally:
        pinned.process.stop()

    assert response.status_code == 404


def test_overlapping_backends_stop_the_broker_naming_both(tmp_path: Path) -> None:
    aws = {"type": "aws", "region": "eu-west-1", "name_prefix": "apps/"}
    shared = {"default_backend": "aws", "backends": {"aws": aws}}
    config = write_config(tmp_path, {"dev": shared, "prod": shared})

    with pytest.raises(RuntimeError) as failed:
        BrokerProcess(tmp_path, ["--config", str(config)], {})

    assert "environments.dev.backends.aws and environments.prod.backends.aws" in (
        str(failed.value)
    )


def test_audit_verify_names_the_one_record_altered_in_the_store(
    configured: Configured, clients: list[BrokerClient]
) -> None:
    dev = _client(clients, configured, "dev")
    dev.access_token("admin", configured.admin_secrets["dev"])
    target = _exported(configured, "dev")[-1]["seq"]
    database = configured.config.parent / "state.db"
    with sqlite3.connect(database) as connection:
        connection.execute(
            "UPDATE audit_records SET outcome = 'refused' "
            "WHERE env = 'dev' AND seq = ?",
            (target,),
        )

    done = run_cli(
        configured.config.parent, "audit", "verify", "--config",
        str(configured.config), "--env", "dev", "--json",
    )  # fmt: skip

    assert done.returncode == 1
    assert json.loads(done.stdout)["broken_seq"] == target


def test_audit_verify_proves_an_untouched_chain_intact(configured: Configured) -> None:
    done = run_cli(
        configured.config.parent, "audit", "verify", "--config",
        str(configured.config), "--env", "prod",
    )  # fmt: skip

    assert done.returncode == 0, done.stdout
    assert "intact" in done.stdout


def test_the_bootstrap_records_open_the_chain(configured: Configured) -> None:
    """Its policy and credential, each requested and then made."""
    opening = _exported(configured, "prod")[:4]

    assert [(r["action"], r["outcome"], r["actor"]) for r in opening] == [
        ("policy.apply", "requested", "bootstrap"),
        ("policy.apply", "ok", "bootstrap"),
        ("credential.create", "requested", "bootstrap"),
        ("credential.create", "ok", "bootstrap"),
    ]
