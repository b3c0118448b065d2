"""Revocation across three real broker processes on one PostgreSQL store.

A revocation made through one process must be enforced by all three within
the bound README.md states (one second): after it, no request carrying the
revoked token is served by any of them, also while readers hammer them.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml
from sqlalchemy import create_engine, text

from tests.conftest import POSTGRES_SERVER
from tests.e2e.broker_process import BrokerProcess, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

BOUND_SECONDS = 1.0
# How long past the bound the tests keep asking, to see nothing is served.
WATCH_SECONDS = 0.5
POLICY = """\
services:
  billing-api:
    secrets:
      read: ["payments/*"]
  ledger-api:
    secrets:
      read: ["ledger/*"]
"""


@dataclass
class Cluster:
    """Three processes, the admin's and two services' client secrets."""

    processes: list[BrokerProcess]
    admin_secret: str
    service_secrets: dict[str, str] = field(default_factory=dict)

    def url(self, index: int, path: str) -> str:
        return f"{self.processes[index].url}/v1/dev/{path}"

    def token(self, service: str, index: int = 0) -> str:
        secret = (
            self.admin_secret if service == "admin" else self.service_secrets[service]
        )
        answer = httpx.post(
            self.url(index, "token"),
            auth=(service, secret),
            data={"grant_type": "client_credentials"},
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])

    def admin(
        self,
        index: int,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        **options: Any,
    ) -> httpx.Response:
        bearer = {"Authorization": f"Bearer {self.token('admin', index)}"}
        return httpx.request(
            method, self.url(index, path), headers={**bearer, **(headers or {})},
            **options,
        )  # fmt: skip

    def read(
        self,
        http: httpx.Client,
        index: int,
        token: str,
        secret: str = "payments/stripe",  # noqa: S107 (a name, not a value)
    ) -> int:
        answer = http.get(
            self.url(index, f"secrets/{secret}"),
            headers={"Authorization": f"Bearer {token}"},
        )
        return answer.status_code

    def kids(self, index: int) -> set[str]:
        keys = httpx.get(self.url(index, "jwks.json")).json()["keys"]
        return {str(key["kid"]) for key in keys}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("cluster")
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
        cluster = Cluster(processes, json.loads(done.stdout)["client_secret"])
        processes.append(BrokerProcess(folder, ["--config", str(config)], {}))
        _provision(cluster)
        # The others start after the policy is applied, so they load it.
        for _ in range(2):
            processes.append(BrokerProcess(folder, ["--config", str(config)], {}))
        yield cluster
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
                # One issuer for all three, as behind one load balancer.
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
    for service, secret in (
        ("billing-api", "payments/stripe"),
        ("ledger-api", "ledger/db"),
    ):
        created = cluster.admin(0, "POST", f"services/{service}/credentials")
        cluster.service_secrets[service] = created.json()["client_secret"]
        stored = cluster.admin(
            0, "PUT", f"secrets/{secret}", json={"value": "v-" + service}
        )
        assert stored.status_code == 200, stored.text


def _watch(
    cluster: Cluster, token: str, revoked_at: float
) -> list[tuple[int, float, int]]:
    """Ask every process with `token` until past the bound: (process, sent, status)."""
    seen: list[tuple[int, float, int]] = []
    with httpx.Client() as http:
        while time.monotonic() < revoked_at + BOUND_SECONDS + WATCH_SECONDS:
            for index in range(len(cluster.processes)):
                sent = time.monotonic()
                seen.append((index, sent, cluster.read(http, index, token)))
    return seen


def _served_after_bound(
    seen: list[tuple[int, float, int]], revoked_at: float
) -> list[tuple[int, float, int]]:
    return [
        (index, round(sent - revoked_at, 3), status)
        for index, sent, status in seen
        if sent > revoked_at + BOUND_SECONDS and status != 401
    ]


def test_token_revoked_through_one_process_is_refused_by_all_within_the_bound(
    cluster: Cluster,
) -> None:
    token = cluster.token("billing-api", 0)
    with httpx.Client() as http:
        assert [cluster.read(http, i, token) for i in range(3)] == [200, 200, 200]

    revoked = httpx.post(
        cluster.url(1, "revoke"),
        auth=("billing-api", cluster.service_secrets["billing-api"]),
        data={"token": token},
    )
    revoked_at = time.monotonic()
    seen = _watch(cluster, token, revoked_at)

    assert revoked.status_code == 200
    assert _served_after_bound(seen, revoked_at) == []
    assert {index for index, _, _ in seen} == {0, 1, 2}


def test_service_revocation_under_load_stops_its_tokens_everywhere_and_only_them(
    cluster: Cluster,
) -> None:
    victim = [cluster.token("billing-api", i) for i in range(3)]
    bystander = cluster.token("ledger-api", 2)
    stop = threading.Event()
    victim_seen: list[tuple[int, float, int]] = []
    bystander_seen: list[int] = []

    def hammer(index: int) -> None:
        with httpx.Client() as http:
            while not stop.is_set():
                for token in victim:
                    sent = time.monotonic()
                    victim_seen.append((index, sent, cluster.read(http, index, token)))
                bystander_seen.append(cluster.read(http, index, bystander, "ledger/db"))

    readers = [threading.Thread(target=hammer, args=(index % 3,)) for index in range(6)]
    for reader in readers:
        reader.start()
    try:
        while len(victim_seen) < 60:
            time.sleep(0.01)
        answer = cluster.admin(2, "POST", "services/billing-api/revoke")
        revoked_at = time.monotonic()
        while time.monotonic() < revoked_at + BOUND_SECONDS + WATCH_SECONDS:
            time.sleep(0.05)
    finally:
        stop.set()
        for reader in readers:
            reader.join()

    assert answer.status_code == 200
    assert any(status == 200 for _, _, status in victim_seen)
    assert _served_after_bound(victim_seen, revoked_at) == []
    assert set(bystander_seen) == {200}


def test_new_key_is_published_by_every_process_before_it_signs(
    cluster: Cluster,
) -> None:
    """Case C10 across processes: the successor is in every JWKS in time."""
    before = cluster.token("ledger-api", 2)
    old_kid = _kid(before)

    rotated = cluster.admin(0, "POST", "keys/rotate", params={"overlap_seconds": 5})
    new_kid = rotated.json()["kid"]
    deadline = time.monotonic() + BOUND_SECONDS
    while not all(new_kid in cluster.kids(i) for i in range(3)):
        assert time.monotonic() < deadline, "a process does not publish the new key"
        time.sleep(0.02)

    assert _kid(cluster.token("ledger-api", 1)) == old_kid


def test_key_revoked_through_one_process_is_refused_and_unpublished_by_all(
    cluster: Cluster,
) -> None:
    """Case C09 across processes: the kid leaves every JWKS; tokens of the
    replacement key work on every process."""
    token = cluster.token("ledger-api", 1)
    kid = _kid(token)

    answer = cluster.admin(0, "POST", f"keys/{kid}/revoke")
    revoked_at = time.monotonic()
    seen = _watch(cluster, token, revoked_at)

    assert answer.status_code == 200
    assert _served_after_bound(seen, revoked_at) == []
    assert all(kid not in cluster.kids(i) for i in range(3))
    fresh = cluster.token("ledger-api", 2)
    assert _kid(fresh) != kid
    with httpx.Client() as http:
        assert cluster.read(http, 1, fresh, "ledger/db") == 200


def _kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])
