"""Compromise across three real broker processes on one PostgreSQL store.

A secret compromised through one process: after the bound README.md states
(one second), no process serves the compromised version or accepts a token
that read it, and the report lists every service that read it, with counts,
reads only other processes had seen included. A service compromised the same
way gets no token from any process and its tokens fail everywhere; the report
lists what it read. No value or token shows in a report, a log or the audit.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections import Counter
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
WATCH_SECONDS = 0.5
STRIPE = f"sk-e2e-compromise-{uuid.uuid4().hex}"
LEDGER = f"ledger-e2e-compromise-{uuid.uuid4().hex}"
SERVICES = ("billing-api", "checkout-api", "auditor-api", "ledger-api")
POLICY = """\
services:
  billing-api: {secrets: {read: ["payments/*"]}}
  checkout-api: {secrets: {read: ["payments/*"]}}
  auditor-api: {secrets: {read: ["payments/*"]}}
  ledger-api: {secrets: {read: ["ledger/*"]}}
"""


@dataclass
class Seen:
    """One answer while watching: which process, when, as whom, what."""

    process: int
    sent: float
    who: str
    status: int
    version: str | None = None


@dataclass
class Cluster:
    """Three processes, the admin's and the services' client secrets, and every
    token and report the tests saw (for the canary check)."""

    processes: list[BrokerProcess]
    admin_secret: str
    client_secrets: dict[str, str] = field(default_factory=dict)
    tokens: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)

    def url(self, index: int, path: str) -> str:
        return f"{self.processes[index].url}/v1/dev/{path}"

    def token_response(self, service: str, index: int) -> httpx.Response:
        secret = (
            self.admin_secret if service == "admin" else self.client_secrets[service]
        )
        return httpx.post(
            self.url(index, "token"), auth=(service, secret),
            data={"grant_type": "client_credentials"},
        )  # fmt: skip

    def token(self, service: str, index: int = 0) -> str:
        answer = self.token_response(service, index)
        assert answer.status_code == 200, answer.text
        token = str(answer.json()["access_token"])
        self.tokens.append(token)
        return token

    def admin(
        self, index: int, method: str, path: str, **options: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token('admin', index)}",
                   **options.pop("headers", {})}  # fmt: skip
        answer = httpx.request(
            method, self.url(index, path), headers=headers, timeout=30, **options
        )
        self.answers.append(answer.text)
        return answer

    def read(
        self, http: httpx.Client, index: int, token: str, secret: str, **params: str
    ) -> httpx.Response:
        return http.get(
            self.url(index, f"secrets/{secret}"), params=params,
            headers={"Authorization": f"Bearer {token}"},
        )  # fmt: skip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("compromise")
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
        processes.append(BrokerProcess(folder, ["--config", str(config)], {}))
        _provision(made)
        for _ in range(2):
            processes.append(BrokerProcess(folder, ["--config", str(config)], {}))
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
                # Reads stay in each process far longer than the tests take.
                "rotation": {"consumer_flush_seconds": 600},
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
    for service in SERVICES:
        created = cluster.admin(0, "POST", f"services/{service}/credentials")
        cluster.client_secrets[service] = created.json()["client_secret"]
    for name, value in (("payments/stripe", STRIPE), ("ledger/db", LEDGER)):
        stored = cluster.admin(0, "PUT", f"secrets/{name}", json={"value": value})
        assert stored.status_code == 200, stored.text
    # The credentials' answers show each client secret, once and rightly.
    cluster.answers.clear()


def _watch(
    cluster: Cluster, tokens: dict[str, str], secret: str, until: float
) -> list[Seen]:
    """Read `secret` with every token on every process until `until`."""
    seen: list[Seen] = []
    with httpx.Client() as http:
        while time.monotonic() < until:
            for index in range(len(cluster.processes)):
                for who, token in tokens.items():
                    sent = time.monotonic()
                    answer = cluster.read(http, index, token, secret)
                    version = answer.json()["version"] if answer.is_success else None
                    seen.append(Seen(index, sent, who, answer.status_code, version))
    return seen


def test_a_compromised_secret_is_served_by_no_process_and_its_readers_refused(
    cluster: Cluster,
) -> None:
    readers = {
        "billing-api": cluster.token("billing-api", 1),
        "checkout-api": cluster.token("checkout-api", 2),
    }
    bystander = cluster.token("auditor-api", 0)
    reads = {"billing-api": [(1, 3), (2, 2)], "checkout-api": [(2, 1), (0, 1)]}
    with httpx.Client() as http:
        for who, places in reads.items():
            for index, times in places:
                for _ in range(times):
                    answer = cluster.read(http, index, readers[who], "payments/stripe")
                    assert answer.json()["value"] == STRIPE
                    old = answer.json()["version"]

    answer = cluster.admin(
        0, "POST", "secrets/payments/stripe/compromise", json={"reason": "leaked"}
    )
    done = time.monotonic()
    watched = _watch(
        cluster, {**readers, "auditor-api": bystander}, "payments/stripe",
        done + BOUND_SECONDS + WATCH_SECONDS,
    )  # fmt: skip
    with httpx.Client() as http:
        by_version = [cluster.read(http, i, bystander, "payments/stripe", version=old)
                      for i in range(3)]  # fmt: skip
    report = cluster.admin(1, "GET", f"compromises/{answer.json()['id']}").json()

    assert answer.status_code == 200, answer.text
    late = [s for s in watched if s.sent > done + BOUND_SECONDS]
    assert {s.process for s in late} == {0, 1, 2}
    assert [s for s in late if s.who != "auditor-api" and s.status != 401] == []
    assert [s for s in late if s.version == old] == []
    assert {a.status_code for a in by_version} <= {401, 410}
    served_old = Counter(s.who for s in watched if s.version == old)
    expected = {who: sum(n for _, n in places) + served_old[who]
                for who, places in reads.items()}  # fmt: skip
    expected.update({who: n for who, n in served_old.items() if who not in expected})
    assert {s["service"]: s["reads"] for s in report["services"]} == expected
    revoked = {t["jti"] for t in report["tokens_revoked"]}
    assert {_jti(token) for token in readers.values()} <= revoked


def test_a_compromised_service_gets_no_token_and_its_tokens_fail_everywhere(
    cluster: Cluster,
) -> None:
    tokens = {f"ledger-{i}": cluster.token("ledger-api", i) for i in range(3)}
    with httpx.Client() as http:
        for index in (1, 2):
            for token in tokens.values():
                assert cluster.read(http, index, token, "ledger/db").status_code == 200
    refused: list[tuple[int, float, int]] = []
    stop = threading.Event()

    def ask_for_tokens() -> None:
        while not stop.is_set():
            for index in range(3):
                sent = time.monotonic()
                status = cluster.token_response("ledger-api", index).status_code
                refused.append((index, sent, status))

    asking = threading.Thread(target=ask_for_tokens)
    asking.start()
    try:
        answer = cluster.admin(
            0, "POST", "services/ledger-api/compromise",
            json={"reason": "host taken over", "window": "1h", "rotate": True},
        )  # fmt: skip
        done = time.monotonic()
        watched = _watch(cluster, tokens, "ledger/db",
                         done + BOUND_SECONDS + WATCH_SECONDS)  # fmt: skip
    finally:
        stop.set()
        asking.join()

    body = answer.json()
    assert answer.status_code == 200, answer.text
    late = [s for s in watched if s.sent > done + BOUND_SECONDS]
    assert {s.process for s in late} == {0, 1, 2}
    assert [s for s in late if s.status != 401] == []
    # Refused, or throttled for failing too often: never a token.
    late_asks = {status for _, sent, status in refused if sent > done + BOUND_SECONDS}
    assert 401 in late_asks and late_asks <= {401, 429}
    assert [(r["secret"], r["reads"]) for r in body["reads"]] == [("ledger/db", 6)]
    assert [(r["secret"], r["status"]) for r in body["rotations"]] == [
        ("ledger/db", "rotated")
    ]


def test_no_value_or_token_is_in_a_report_a_log_or_the_audit(
    cluster: Cluster,
) -> None:
    """Canary, after the compromises above."""
    exported = cluster.admin(0, "GET", "audit").text
    written = "".join(cluster.answers) + exported
    written += "".join(process.output() for process in cluster.processes)

    assert "secret.compromise" in exported and "service.compromise" in exported
    for canary in (STRIPE, LEDGER, *cluster.tokens, *cluster.client_secrets.values()):
        assert canary not in written


def _jti(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["jti"])
