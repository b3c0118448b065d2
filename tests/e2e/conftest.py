"""End-to-end fixtures: a real broker process in dev mode, and a client for it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.e2e.broker_process import BrokerProcess
from tests.e2e.client import BrokerClient

ADMIN_SECRET = "e2e-admin-secret-0123456789"


@dataclass
class DevBroker:
    process: BrokerProcess
    client: BrokerClient

    def admin_token(self) -> str:
        return self.client.access_token("admin", ADMIN_SECRET)


@pytest.fixture(scope="module")
def dev_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevBroker]:
    """One dev-mode broker for the tests of a module."""
    folder = tmp_path_factory.mktemp("broker")
    process = BrokerProcess(folder, ["--dev", "--dev-admin-secret", ADMIN_SECRET], {})
    client = BrokerClient(process.url)
    try:
        yield DevBroker(process, client)
    finally:
        client.close()
        process.stop()


@pytest.fixture
def admin_token(dev_broker: DevBroker) -> str:
    return dev_broker.admin_token()
