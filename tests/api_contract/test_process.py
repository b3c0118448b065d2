"""The real `tokenbroker serve` process, with a configuration file naming all four
backends, serving, writing, listing and rotating through the same API.

The process finds moto's keys in its environment, as it would find real ones;
every other backend's configuration is in the file.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.api_contract.deployment import KINDS, POLICY, environments
from tests.backends.providers import Providers
from tests.backends.providers.aws import CREDENTIALS
from tests.e2e.broker_process import BrokerProcess, run_cli
from tests.e2e.client import BrokerClient
from tests.e2e.configured import write_config

pytestmark = pytest.mark.e2e


@dataclass
class Served:
    """The process and, per environment, a client and its admin's secret."""

    process: BrokerProcess
    clients: dict[str, BrokerClient]
    admin_secrets: dict[str, str]

    def token(self, env: str, service: str = "admin") -> str:
        client = self.clients[env]
        if service == "admin":
            return client.access_token("admin", self.admin_secrets[env])
        secret = client.new_credential(self.token(env), service)
        return client.access_token(service, secret)

    def bearer(self, env: str, service: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(env, service)}"}


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, providers: Providers
) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("served")
    config = write_config(folder, environments(providers))
    admin_secrets = bootstrap(folder, config)
    process = BrokerProcess(folder, ["--config", str(config)], dict(CREDENTIALS))
    clients = {env: BrokerClient(process.url, env) for env in KINDS}
    made = Served(process, clients, admin_secrets)
    try:
        for env in KINDS:
            response = clients[env].put_policy(made.token(env), "contract", POLICY)
            assert response.status_code == 200, response.text
        yield made
    finally:
        for client in clients.values():
            client.close()
        process.stop()


def bootstrap(folder: Path, config: Path) -> dict[str, str]:
    """Every environment's first admin secret, by `tokenbroker bootstrap`."""
    secrets = {}
    for env in KINDS:
        done = run_cli(folder, "bootstrap", "--config", str(config), "--env", env,
                       "--json")  # fmt: skip
        assert done.returncode == 0, done.stderr
        secrets[env] = json.loads(done.stdout)["client_secret"]
    return secrets


@pytest.fixture(params=KINDS)
def env(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_readiness_names_every_backend_of_the_file(served: Served) -> None:
    ready = httpx.get(f"{served.process.url}/readyz")

    assert ready.status_code == 200
    assert ready.json()["checks"] == {"store": "ok", "audit": "ok"} | {
        f"{kind}/{kind}": "ok" for kind in KINDS
    }


def test_a_written_secret_is_served_and_listed(served: Served, env: str) -> None:
    client, headers = served.clients[env], served.bearer(env)
    written = client.request(
        "PUT", "secrets/served/db", json={"value": f"<{env}>"}, headers=headers
    )

    read = client.request("GET", "secrets/served/db", headers=headers)
    listed = client.request(
        "GET", "secrets", params={"prefix": "served/"}, headers=headers
    )

    assert written.status_code == 200, written.text
    assert (read.json()["value"], read.json()["version"]) == (
        f"<{env}>", written.json()["version"],
    )  # fmt: skip
    assert [s["name"] for s in listed.json()["secrets"]] == ["served/db"]


def test_readers_never_fail_while_the_secret_rotates(served: Served, env: str) -> None:
    """Rotation on demand, with a service reading all along: every read is 200,
    and the consumers endpoint shows that the service moved to the new version."""
    client, admin = served.clients[env], served.bearer(env)
    reader = served.bearer(env, "svc-a")
    client.request("PUT", "secrets/busy/db", json={"value": "<PW1>"}, headers=admin)
    statuses: list[int] = []
    reading, done = threading.Event(), threading.Event()

    def read_until_done() -> None:
        with httpx.Client(base_url=client.base + "/", timeout=30) as http:
            while not done.is_set():
                statuses.append(http.get("secrets/busy/db", headers=reader).status_code)
                reading.set()

    thread = threading.Thread(target=read_until_done)
    thread.start()
    try:
        assert reading.wait(timeout=30)
        rotated = client.request("POST", "secrets/busy/db/rotate", headers=admin)
        after = client.request("GET", "secrets/busy/db", headers=reader)
    finally:
        done.set()
        thread.join()
    consumers = client.request("GET", "secrets/busy/db/consumers", headers=admin)

    assert rotated.json()["state"] == "grace"
    assert after.json()["version"] == rotated.json()["new_version"]
    assert statuses and set(statuses) == {200}
    assert [(s["service"], s["on_current"]) for s in consumers.json()["services"]] == [
        ("svc-a", True)
    ]
