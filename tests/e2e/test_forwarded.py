"""`X-Forwarded-For` names the audited source only when a trusted proxy sends it.

uvicorn believes the header from 127.0.0.1 unless told otherwise; the broker
tells it to believe no one but the configuration's `trusted_proxies`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.e2e.broker_process import BrokerProcess
from tests.e2e.configured import LOCAL, write_config
from tests.e2e.conftest import DevBroker

pytestmark = pytest.mark.e2e

CHOSEN = "203.0.113.9"


@pytest.fixture(scope="module")
def behind_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """A broker that trusts the proxy at 127.0.0.1 (the test itself)."""
    folder = tmp_path_factory.mktemp("proxied")
    config = write_config(folder, {"dev": LOCAL})
    settings = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**settings, "trusted_proxies": ["127.0.0.1/32"]}))
    process = BrokerProcess(folder, ["--config", str(config)], {})
    try:
        yield process
    finally:
        process.stop()


def _source_of(database: Path, url: str, request_id: str) -> str:
    """Send a refused token request under `request_id`; answer its audited source."""
    response = httpx.post(
        f"{url}/v1/dev/token",
        data={"grant_type": "client_credentials", "client_id": "nobody",
              "client_secret": "not-a-secret-0123456789"},
        headers={"X-Forwarded-For": CHOSEN, "X-Request-Id": request_id},
    )  # fmt: skip
    assert response.status_code == 401
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        (source,) = connection.execute(
            "SELECT source FROM audit_records WHERE request_id = ?", (request_id,)
        ).fetchone()
    finally:
        connection.close()
    return str(source)


def test_a_forwarded_address_from_localhost_is_ignored_by_default(
    dev_broker: DevBroker,
) -> None:
    database = dev_broker.process.folder / ".tokenbroker" / "state.db"

    source = _source_of(database, dev_broker.process.url, "forwarded-ignored")

    assert source == "127.0.0.1"


def test_a_trusted_proxy_names_the_caller_it_forwards(
    behind_proxy: BrokerProcess,
) -> None:
    database = behind_proxy.folder / "state.db"

    source = _source_of(database, behind_proxy.url, "forwarded-believed")

    assert source == CHOSEN
