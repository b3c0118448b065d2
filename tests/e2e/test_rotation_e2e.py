"""Rotation over HTTP against the real broker process, and across a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.broker_process import BrokerProcess, run_cli
from tests.e2e.client import BrokerClient
from tests.rotation.upstream import Upstream

POLICY = """\
services:
  rotator: {secrets: {read: ["app/**"], write: ["app/**"], rotate: ["app/**"]}}
  reader: {secrets: {read: ["app/**"]}}
  outsider: {secrets: {read: ["elsewhere/*"]}}
secrets:
  app/db:
    rotation: {every: 30d, generator: {type: random, length: 32}, grace: 1h}
  app/fast:
    rotation: {every: 2s, generator: {type: random}, grace: 1h}
  app/upstream:
    rotation: {every: 30d, generator: {type: http, endpoint: minter}, grace: 1h}
"""


@dataclass
class Deployment:
    """A configured broker folder: config, policies, the admin's secret."""

    folder: Path
    config: Path
    policies: Path
    admin_secret: str
    upstream: Upstream

    def start(self) -> BrokerProcess:
        return BrokerProcess(
            self.folder, ["--config", str(self.config), "--policies",
                          str(self.policies)], {}
        )  # fmt: skip


@dataclass
class Running:
    deployment: Deployment
    process: BrokerProcess
    client: BrokerClient
    tokens: dict[str, str]

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def deploy(folder: Path, upstream: Upstream) -> Deployment:
    key = folder / "kek.key"
    assert run_cli(folder, "keygen", str(key)).returncode == 0
    config = folder / "config.yaml"
    config.write_text(
        f"store: sqlite:///{folder / 'state.db'}\n"
        f"encryption_key_file: {key}\n"
        "environments:\n  dev:\n    default_backend: local\n"
        "    backends:\n      local: {type: local}\n"
        "rotation:\n  tick_seconds: 0.2\n  lease_seconds: 2\n"
        "  test_window_seconds: 600\n  test_backoff_seconds: 0.2\n"
        "  test_backoff_max_seconds: 0.5\n  consumer_flush_seconds: 0.5\n"
        "  endpoints:\n    minter:\n"
        f"      url: {upstream.url}\n      hmac_key_file: {upstream.key_file}\n"
        f"      ca_file: {upstream.ca_file}\n"
    )
    booted = run_cli(folder, "bootstrap", "--config", str(config), "--env", "dev",
                     "--json")  # fmt: skip
    assert booted.returncode == 0, booted.stderr
    policies = folder / "policies"
    policies.mkdir()
    (policies / "rotation.yaml").write_text(POLICY)
    # The JSON is the last line: unconfigured log lines may come before it.
    secret = json.loads(booted.stdout.strip().splitlines()[-1])["client_secret"]
    return Deployment(folder, config, policies, secret, upstream)


def connect(deployment: Deployment, process: BrokerProcess) -> Running:
    client = BrokerClient(process.url)
    admin = client.access_token("admin", deployment.admin_secret)
    tokens = {"admin": admin}
    for service in ("rotator", "reader", "outsider"):
        secret = client.new_credential(admin, service)
        tokens[service] = client.access_token(service, secret)
    return Running(deployment, process, client, tokens)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    running = Upstream(tmp_path_factory.mktemp("upstream"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def broker(
    tmp_path_factory: pytest.TempPathFactory, upstream: Upstream
) -> Iterator[Running]:
    deployment = deploy(tmp_path_factory.mktemp("rotation"), upstream)
    process = deployment.start()
    running = connect(deployment, process)
    try:
        yield running
    finally:
        running.client.close()
        process.stop()


def put(broker: Running, name: str, value: str) -> None:
    response = broker.client.put_secret(
        broker.tokens["rotator"], name, {"value": value}
    )
    assert response.status_code == 200, response.text


def rotate(broker: Running, name: str, who: str = "rotator") -> dict[str, object]:
    response = broker.client.request(
        "POST", f"secrets/{name}/rotate", headers=broker.headers(who)
    )
    assert response.status_code in (200, 202), response.text
    return dict(response.json())


def test_rotate_answers_the_record_with_its_steps_and_new_version(
    broker: Running,
) -> None:
    put(broker, "app/db", "<PW1>")

    record = rotate(broker, "app/db")

    assert record["state"] == "grace"
    assert record["new_version"] == "2"
    assert [s["step"] for s in record["steps"]] == ["create", "set", "test", "finish"]  # type: ignore[attr-defined]


def test_after_rotation_previous_is_readable_and_current_is_new(
    broker: Running,
) -> None:
    put(broker, "app/prev", "<OLD>")
    rotate(broker, "app/prev")

    current = broker.client.get_secret(broker.tokens["reader"], "app/prev").json()
    previous = broker.client.get_secret(
        broker.tokens["reader"], "app/prev", stage="previous"
    ).json()

    assert previous["value"] == "<OLD>"
    assert current["value"] != "<OLD>"


def test_a_rotation_record_is_read_back_by_its_id(broker: Running) -> None:
    put(broker, "app/byid", "<PW1>")
    record = rotate(broker, "app/byid")

    response = broker.client.request(
        "GET", f"rotations/{record['id']}", headers=broker.headers("reader")
    )

    assert response.json()["id"] == record["id"]


def test_a_service_without_access_does_not_see_a_rotation(broker: Running) -> None:
    put(broker, "app/hidden", "<PW1>")
    record = rotate(broker, "app/hidden")

    response = broker.client.request(
        "GET", f"rotations/{record['id']}", headers=broker.headers("outsider")
    )

    assert response.status_code == 404


def test_rotating_needs_the_rotate_scope(broker: Running) -> None:
    put(broker, "app/scoped", "<PW1>")

    response = broker.client.request(
        "POST", "secrets/app/scoped/rotate", headers=broker.headers("reader")
    )

    assert response.status_code == 403


def test_consumers_show_who_has_moved_to_the_new_version(broker: Running) -> None:
    put(broker, "app/moved", "<PW1>")
    broker.client.get_secret(broker.tokens["reader"], "app/moved")
    broker.client.get_secret(broker.tokens["rotator"], "app/moved")
    rotate(broker, "app/moved")
    broker.client.get_secret(broker.tokens["reader"], "app/moved")

    response = broker.client.request(
        "GET", "secrets/app/moved/consumers", headers=broker.headers("reader")
    )

    moved = {s["service"]: s["on_current"] for s in response.json()["services"]}
    assert moved == {"reader": True, "rotator": False}


def test_readers_hammering_during_rotation_never_get_an_error_or_mixed_value(
    broker: Running,
) -> None:
    put(broker, "app/hammer", "<PW1>")
    seen: list[tuple[int, str, str]] = []
    stop = threading.Event()

    def hammer() -> None:
        client = BrokerClient(broker.process.url)
        try:
            while not stop.is_set():
                response = client.get_secret(broker.tokens["reader"], "app/hammer")
                body = response.json()
                seen.append((response.status_code, body.get("version"),
                             body.get("value")))  # fmt: skip
        finally:
            client.close()

    readers = [threading.Thread(target=hammer) for _ in range(4)]
    for reader in readers:
        reader.start()
    for _ in range(5):
        rotate(broker, "app/hammer")
    stop.set()
    for reader in readers:
        reader.join()

    assert {status for status, _, _ in seen} == {200}
    values_by_version: dict[str, set[str]] = {}
    for _, version, value in seen:
        values_by_version.setdefault(version, set()).add(value)
    assert all(len(values) == 1 for values in values_by_version.values())


def test_bulk_rotation_answers_one_result_per_secret(broker: Running) -> None:
    for n in range(3):
        put(broker, f"app/bulk/s{n}", f"<PW{n}>")

    response = broker.client.request(
        "POST", "rotations", json={"pattern": "app/bulk/*"},
        headers=broker.headers("rotator"),
    )  # fmt: skip

    results = response.json()["results"]
    assert [(r["name"], r["status"]) for r in results] == [
        (f"app/bulk/s{n}", "rotated") for n in range(3)
    ]


def test_a_schedule_rotates_the_secret_on_its_own(broker: Running) -> None:
    put(broker, "app/fast", "<PW1>")

    deadline = time.monotonic() + 30
    version = "1"
    while version == "1" and time.monotonic() < deadline:
        time.sleep(0.2)
        version = broker.client.get_secret(broker.tokens["reader"], "app/fast").json()[
            "version"
        ]

    assert version != "1"


def test_metrics_show_rotation_outcomes(broker: Running) -> None:
    put(broker, "app/metered", "<PW1>")
    rotate(broker, "app/metered")

    text = broker.client.request("GET", "/metrics").text

    assert 'tokenbroker_rotations_total{env="dev",outcome="succeeded"}' in text


def test_a_broker_killed_mid_rotation_finishes_it_after_restart(
    tmp_path: Path, upstream: Upstream
) -> None:
    deployment = deploy(tmp_path, upstream)
    first = deployment.start()
    running = connect(deployment, first)
    put(running, "app/upstream", "<PW1>")
    upstream.state.applied.clear()
    upstream.state.failures["verify"] = [503] * 10_000  # the target lags

    started = rotate(running, "app/upstream")
    os.killpg(first._process.pid, signal.SIGKILL)
    first._process.wait()
    running.client.close()
    upstream.state.failures["verify"].clear()
    second = deployment.start()
    try:
        client = BrokerClient(second.url)
        admin = client.access_token("admin", deployment.admin_secret)
        deadline = time.monotonic() + 30
        record: dict[str, object] = {}
        while record.get("state") != "grace" and time.monotonic() < deadline:
            time.sleep(0.2)
            record = client.request(
                "GET", f"rotations/{started['id']}",
                headers={"Authorization": f"Bearer {admin}"},
            ).json()  # fmt: skip
        client.close()
    finally:
        second.stop()

    assert started["state"] == "running"
    assert record["state"] == "grace"
    assert record["new_version"] == started["new_version"] == "2"
