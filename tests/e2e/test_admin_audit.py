"""An environment's first admin credential is audited alike, however it is made:
by `tokenbroker bootstrap` or by `serve --dev`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from service.audit_chain import records
from tests.e2e.broker_process import run_cli
from tests.e2e.configured import LOCAL, write_config
from tests.e2e.conftest import ADMIN_SECRET, DevBroker

pytestmark = pytest.mark.e2e


def _chain(database: Path, env: str) -> list[dict[str, Any]]:
    engine = create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as connection:
            return [record.as_json() for record in records(connection, env)]
    finally:
        engine.dispose()


def _shape(chain: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [(r["action"], r["outcome"], r["actor"], r["target"]) for r in chain]


@pytest.fixture(scope="module")
def bootstrapped(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The chain of an environment right after `tokenbroker bootstrap`."""
    folder = tmp_path_factory.mktemp("bootstrap")
    config = write_config(folder, {"dev": LOCAL})
    done = run_cli(folder, "bootstrap", "--config", str(config), "--env", "dev")
    assert done.returncode == 0, done.stderr
    return _chain(folder / "state.db", "dev")


@pytest.fixture(scope="module")
def dev_chain(dev_broker: DevBroker) -> list[dict[str, Any]]:
    """The chain of dev mode's environment, as `serve --dev` left it at start."""
    return _chain(dev_broker.process.folder / ".tokenbroker" / "state.db", "dev")


def test_bootstrap_records_the_admin_policy_and_credential_before_and_after(
    bootstrapped: list[dict[str, Any]],
) -> None:
    assert _shape(bootstrapped) == [
        ("policy.apply", "requested", "bootstrap", "bootstrap-admin"),
        ("policy.apply", "ok", "bootstrap", "bootstrap-admin"),
        ("credential.create", "requested", "bootstrap", "admin"),
        ("credential.create", "ok", "bootstrap", "admin"),
    ]


def test_serve_dev_records_its_admin_credential_as_bootstrap_does(
    bootstrapped: list[dict[str, Any]], dev_chain: list[dict[str, Any]]
) -> None:
    assert _shape(dev_chain[: len(bootstrapped)]) == _shape(bootstrapped)


def test_the_dev_admin_record_names_the_credential_by_id_only(
    dev_chain: list[dict[str, Any]],
) -> None:
    created = next(
        r
        for r in dev_chain
        if (r["action"], r["outcome"]) == ("credential.create", "ok")
    )

    assert created["version"].startswith("cred_")
    assert ADMIN_SECRET not in repr(dev_chain)
