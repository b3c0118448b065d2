"""Brokers set up for the compromise tests: one, or replicas on one store.

`billing-api` and `checkout-api` read `payments/*`, `ledger-api` reads
`ledger/*`, and `responder` may only declare `payments/*` compromised. Each has
a credential; `payments/stripe` and `ledger/db` hold canary values. The feed's
threads do not run: a test moves each replica's feed on by `catch_up`, so it
decides when another process hears of a change. `hold_rotations` adds
`payments/held`, whose rotation's first create step waits for the test.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from service.app import create_app
from service.broker import Broker
from service.clock import Clock
from service.config import load_settings
from service.store.notify import CHANNEL
from service.store.tables import metadata
from tests.rotation.fakes import HeldTarget
from tests.service.harness import PUBLIC_URL, LocalBroker, write_config

ENV = "dev"
SECRET = "payments/stripe"
LEDGER = "ledger/db"
VALUE = f"sk-compromise-{uuid.uuid4().hex}"
LEDGER_VALUE = f"ledger-compromise-{uuid.uuid4().hex}"
SERVICES = ("billing-api", "checkout-api", "ledger-api", "responder")
POLICY = """\
services:
  billing-api:
    secrets: {read: ["payments/*"]}
  checkout-api:
    secrets: {read: ["payments/*"]}
  ledger-api:
    secrets: {read: ["ledger/*"]}
  responder:
    secrets: {revoke: ["payments/*"]}
secrets:
  payments/stripe:
    rotation: {every: 30d, generator: {type: random, length: 32}, grace: 1h}
"""
HELD = "payments/held"
HELD_POLICY = f"""\
secrets:
  {HELD}:
    rotation: {{every: 30d, generator: {{type: held}}, grace: 1h}}
"""
LOCAL = {"default_backend": "local", "backends": {"local": {"type": "local"}}}
# A break-glass waits two polls for the others' reads: short in tests.
FEED = {"poll_seconds": 0.01, "lookback_seconds": 10.0}
PUSH_DEADLINE_SECONDS = 10.0


@dataclass
class Node:
    """One broker process of the set-up, with the services' client secrets."""

    local: LocalBroker
    secrets: dict[str, str]

    @property
    def broker(self) -> Broker:
        return self.local.broker

    def token(self, service: str = "billing-api", **form: str) -> str:
        return self.local.token(ENV, service, self.secrets[service], **form)

    def admin_token(self) -> str:
        return self.local.admin_token(ENV)

    def token_response(self, service: str, **form: str) -> httpx.Response:
        return self.local.token_response(ENV, service, self.secrets[service], **form)

    def read(self, token: str, name: str = SECRET, **params: str) -> httpx.Response:
        return self.local.call(
            "GET", f"/v1/{ENV}/secrets/{name}", params=params,
            headers=self.local.bearer(token),
        )  # fmt: skip

    def admin(self, method: str, path: str, **options: Any) -> httpx.Response:
        token = self.local.admin_token(ENV)
        return self.local.call(
            method, f"/v1/{ENV}/{path}", headers=self.local.bearer(token), **options
        )

    def compromise(
        self, name: str = SECRET, *, token: str | None = None, **body: object
    ) -> httpx.Response:
        """Declare a version of `name` compromised (as an admin by default)."""
        bearer = token or self.local.admin_token(ENV)
        return self.local.call(
            "POST", f"/v1/{ENV}/secrets/{name}/compromise",
            json={"reason": "leaked in a build log", **body},
            headers=self.local.bearer(bearer),
        )  # fmt: skip

    def break_glass(self, service: str, **body: object) -> httpx.Response:
        return self.admin(
            "POST", f"services/{service}/compromise",
            json={"reason": "host taken over", **body},
        )  # fmt: skip

    def catch_up(self) -> None:
        """What this process's feed thread would do next: poll every channel."""
        self.broker.revocations.feed.poll()
        self.broker.compromise.containment.poll()
        self.broker.policy_sync.poll()
        self.broker.secret_changes.poll()


class _Peer(LocalBroker):
    """A LocalBroker over a store whose admin another node bootstrapped."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.app = create_app(broker)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_url: str
) -> Iterator[str]:
    """The URL of an empty store on each supported database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
        return
    yield postgres_url
    _empty(postgres_url)


@pytest.fixture
def postgres_store(postgres_url: str) -> Iterator[str]:
    """The session's PostgreSQL database, emptied after the test."""
    yield postgres_url
    _empty(postgres_url)


def _empty(url: str) -> None:
    # The database lives for the whole session: the next test starts afresh.
    engine = create_engine(url)
    with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())
    engine.dispose()


@contextmanager
def nodes(
    folder: Path, clock: Clock, count: int = 1, **settings: Any
) -> Iterator[list[Node]]:
    """`count` brokers in this process over one configuration and store."""
    settings.setdefault("revocation", FEED)
    path = write_config(folder, {ENV: LOCAL}, **settings)
    brokers = [
        Broker(load_settings(path), public_url=PUBLIC_URL, clock=clock)
        for _ in range(count)
    ]
    try:
        locals_ = [LocalBroker(brokers[0]), *map(_Peer, brokers[1:])]
        first = locals_[0]
        assert first.put_policy(ENV, "services", POLICY).status_code == 200
        secrets = {service: first.credential(ENV, service) for service in SERVICES}
        admin = first.admin_token(ENV)
        for name, value in ((SECRET, VALUE), (LEDGER, LEDGER_VALUE)):
            stored = first.call(
                "PUT", f"/v1/{ENV}/secrets/{name}", json={"value": value},
                headers=first.bearer(admin),
            )  # fmt: skip
            assert stored.status_code == 200, stored.text
        made = [Node(local, secrets) for local in locals_]
        for node in made:
            node.catch_up()
        yield made
    finally:
        for broker in brokers:
            broker.close()


def hold_rotations(node: Node) -> HeldTarget:
    """Give `payments/held` a value and a HeldTarget to rotate with."""
    target = HeldTarget()
    node.broker.rotation.generators.register("held", lambda _p, _s: target)
    assert node.local.put_policy(ENV, "held", HELD_POLICY).status_code == 200
    stored = node.admin("PUT", f"secrets/{HELD}", json={"value": "first-value"})
    assert stored.status_code == 200, stored.text
    return target


def wait_for_listener(node: Node) -> None:
    """Until the node's LISTEN connection shows in pg_stat_activity."""
    deadline = time.monotonic() + PUSH_DEADLINE_SECONDS
    while True:
        # A new transaction each time: the view is a snapshot per transaction.
        with node.broker.engine.connect() as connection:
            listening = connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE query = :query"
                    " AND datname = current_database()"
                ),
                {"query": f"LISTEN {CHANNEL}"},
            ).scalar_one()
        if listening:
            return
        assert time.monotonic() < deadline, "the listener never connected"
        time.sleep(0.01)
