"""Readiness per backend, and one store down while the others keep serving.

For each remote kind, a broker whose store of that kind is a server of its own,
started from the same provider as the session's: secrets are written and
readiness asked while it runs, then the server is stopped and the tests look at
what the broker answers. The other environments use the session's servers.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.api_contract.api import Api
from tests.api_contract.deployment import KINDS, REMOTE_KINDS, four_backend_broker
from tests.backends.providers import Providers
from tests.service.conftest import FakeClock
from tests.service.harness import LocalBroker

# Fail fast once the server is gone: one retry, short timeouts.
QUICK = {
    "vault": {"timeout": 5},
    "aws": {"max_attempts": 2, "timeout_seconds": 5},
    "azure": {"max_attempts": 2, "timeout_seconds": 5},
}
CANARY = "<SECRET_VALUE>-readiness"


@dataclass
class Outage:
    """A broker, the kind of store that went down, and readiness before it did."""

    broker: LocalBroker
    kind: str
    apis: dict[str, Api]
    ready_before: httpx.Response

    @property
    def down(self) -> Api:
        return self.apis[self.kind]

    @property
    def others(self) -> list[str]:
        return [kind for kind in KINDS if kind != self.kind]


@pytest.fixture(scope="module", params=REMOTE_KINDS)
def outage(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    providers: Providers,
) -> Iterator[Outage]:
    kind = str(request.param)
    folder = tmp_path_factory.mktemp(f"outage-{kind}")
    server = importlib.import_module(f"tests.backends.providers.{kind}").start(
        tmp_path_factory.mktemp(kind)
    )
    options = {kind: {"provider": server, **QUICK[kind]}}
    clock = FakeClock()
    running = True
    try:
        with four_backend_broker(folder, clock, providers, options) as broker:
            apis = {k: Api(broker, k, clock) for k in KINDS}
            apis[kind].version_of(apis[kind].put("down/db", CANARY))
            for other in KINDS:
                apis[other].version_of(apis[other].put("up/db", f"<{other}>"))
            ready_before = broker.call("GET", "/readyz")
            server.stop()
            running = False
            yield Outage(broker, kind, apis, ready_before)
    finally:
        if running:
            server.stop()


def test_readiness_reports_every_backend_by_environment_and_name(
    outage: Outage,
) -> None:
    """Each backend is a check of its own, `ENV/NAME`, beside the store."""
    body = outage.ready_before.json()

    assert outage.ready_before.status_code == 200
    assert body["status"] == "ready"
    assert {f"{kind}/{kind}" for kind in KINDS} <= set(body["checks"])
    assert set(body["checks"].values()) == {"ok"}


def test_a_stopped_store_makes_readiness_503_naming_it(outage: Outage) -> None:
    """Only the stopped store's check fails, and the answer is 503."""
    response = outage.broker.call("GET", "/readyz")

    assert (response.status_code, response.json()["status"]) == (503, "not_ready")
    failing = {n for n, check in response.json()["checks"].items() if check != "ok"}
    assert failing == {f"{outage.kind}/{outage.kind}"}


def test_reads_from_a_stopped_store_are_503_with_a_clear_reason(
    outage: Outage,
) -> None:
    """503 naming the store; no address, value or traceback in the answer."""
    response = outage.down.get("down/db")

    assert (response.status_code, response.json()["error"]) == (
        503, "backend_unavailable",
    )  # fmt: skip
    description = response.json()["error_description"]
    assert f"secret store '{outage.kind}' of environment '{outage.kind}'" in (
        description
    )
    assert "127.0.0.1" not in description
    assert CANARY not in response.text
    assert "Traceback" not in response.text


def test_other_stores_stay_readable_while_one_is_down(outage: Outage) -> None:
    """The other three environments' secrets still read while one is down."""
    values = {k: outage.apis[k].get("up/db").json()["value"] for k in outage.others}

    assert values == {kind: f"<{kind}>" for kind in outage.others}


def test_listing_a_stopped_store_is_503_not_an_empty_page(outage: Outage) -> None:
    """Nothing listed is never taken for "nothing there" (case C18)."""
    response = outage.down.call("GET", "secrets", params={"prefix": "down/"})

    assert (response.status_code, response.json()["error"]) == (
        503, "backend_unavailable",
    )  # fmt: skip
