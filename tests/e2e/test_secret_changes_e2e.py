"""A secret changed through one of three real broker processes on one
PostgreSQL store is served new by all three within the bound README.md states
(one second), well inside their read caches' five seconds (case C07).

The third process does not listen (`revocation.listen: false`): the poll alone
brings it the change. Readers ask every process over and over from before the
change until past the bound; no answer sent after the bound may hold the old
version.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import create_engine, text

from tests.conftest import POSTGRES_SERVER
from tests.e2e.broker_process import BrokerProcess, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

BOUND_SECONDS = 1.0
# How long past the bound the readers keep asking.
WATCH_SECONDS = 0.5
SECRET = "payments/stripe"
POLICY = """\
services:
  billing-api:
    secrets: {read: ["payments/*"]}
secrets:
  payments/stripe:
    rotation: {every: 30d, generator: {type: random, length: 32}, grace: 1h}
"""
POLL_ONLY = {"TOKENBROKER_REVOCATION__LISTEN": "false"}


@dataclass
class Cluster:
    """Three processes, the admin's client secret and billing-api's."""

    processes: list[BrokerProcess]
    admin_secret: str
    billing_secret: str = ""

    def url(self, index: int, path: str) -> str:
        return f"{self.processes[index].url}/v1/dev/{path}"

    def token(self, service: str, secret: str, index: int = 0) -> str:
        answer = httpx.post(
            self.url(index, "token"), auth=(service, secret),
            data={"grant_type": "client_credentials"},
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])

    def admin(
        self, index: int, method: str, path: str, **options: Any
    ) -> httpx.Response:
        bearer = self.token("admin", self.admin_secret, index)
        headers = {"Authorization": f"Bearer {bearer}", **options.pop("headers", {})}
        return httpx.request(
            method, self.url(index, path), headers=headers, timeout=30, **options
        )

    def version(self, http: httpx.Client, index: int, token: str) -> str:
        answer = http.get(
            self.url(index, f"secrets/{SECRET}"),
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["version"])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("secret-changes")
    database = f"tokenbroker_e2e_{secrets.token_hex(4)}"
    server = create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{database}"'))
    processes: list[BrokerProcess] = []
    try:
        config = _config(folder, POSTGRES_SERVER.rsplit("/", 1)[0] + f"/{database}")
        done = run_cli(folder, "bootstrap", "--config", str(config), "--env", "dev",
                       "--json")  # fmt: skip
        assert done.returncode == 0, done.stderr
        admin = json.loads(done.stdout.strip().splitlines()[-1])["client_secret"]
        made = Cluster(processes, admin)
        arguments = ["--config", str(config)]
        processes.append(BrokerProcess(folder, arguments, {}))
        _provision(made)
        processes.append(BrokerProcess(folder, arguments, {}))
        processes.append(BrokerProcess(folder, arguments, POLL_ONLY))
        yield made
    finally:
        for process in processes:
            process.stop()
        with server.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{database}" WITH (FORCE)'))
        server.dispose()


def _config(folder: Path, store: str) -> Path:
    key = folder / "kek.key"
    assert run_cli(folder, "keygen", str(key)).returncode == 0
    path = folder / "config.yaml"
    local = {"default_backend": "local", "backends": {"local": {"type": "local"}}}
    path.write_text(
        yaml.safe_dump(
            {
                "public_url": "http://broker.internal",
                "store": store,
                "encryption_key_file": str(key),
                "environments": {"dev": local},
            }
        )
    )
    return path


def _provision(cluster: Cluster) -> None:
    applied = cluster.admin(
        0, "PUT", "policies/services", content=POLICY,
        headers={"Content-Type": "application/yaml"},
    )  # fmt: skip
    assert applied.status_code == 200, applied.text
    created = cluster.admin(0, "POST", "services/billing-api/credentials")
    cluster.billing_secret = created.json()["client_secret"]
    stored = cluster.admin(0, "PUT", f"secrets/{SECRET}", json={"value": "v-first"})
    assert stored.status_code == 200, stored.text


def _write(cluster: Cluster, index: int) -> str:
    value = f"v-{secrets.token_hex(8)}"
    written = cluster.admin(index, "PUT", f"secrets/{SECRET}", json={"value": value})
    assert written.status_code == 200, written.text
    return str(written.json()["version"])


def _rotate(cluster: Cluster, index: int) -> str:
    rotated = cluster.admin(index, "POST", f"secrets/{SECRET}/rotate")
    assert rotated.status_code == 200, rotated.text
    return str(rotated.json()["new_version"])


CHANGES: dict[str, Callable[[Cluster, int], str]] = {
    "write": _write,
    "rotate": _rotate,
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_change_through_one_process_is_served_by_all_within_the_bound(
    cluster: Cluster, change: str
) -> None:
    """Every process has the old version cached when the change is made."""
    tokens = [cluster.token("billing-api", cluster.billing_secret, i) for i in range(3)]
    seen: list[tuple[int, float, str]] = []
    with httpx.Client() as http:
        old = {cluster.version(http, i, tokens[i]) for i in range(3)}

        new = CHANGES[change](cluster, 0)
        changed_at = time.monotonic()
        while time.monotonic() < changed_at + BOUND_SECONDS + WATCH_SECONDS:
            for index in range(3):
                sent = time.monotonic()
                seen.append((index, sent, cluster.version(http, index, tokens[index])))

    stale = [
        (index, round(sent - changed_at, 3), version)
        for index, sent, version in seen
        if sent > changed_at + BOUND_SECONDS and version != new
    ]
    assert len(old) == 1 and new not in old
    assert stale == []
    assert {index for index, _, _ in seen} == {0, 1, 2}
