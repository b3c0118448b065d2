"""Readiness per backend, and one store down while the others keep serving.

Each test runs a broker whose store of one kind is a server of the test's own,
started from the same provider as the session's, and stops that server midway.
The other environments use the session's servers.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    """A broker, the kind of store that goes down, and that store's server."""

    broker: LocalBroker
    kind: str
    apis: dict[str, Api]
    server: Any

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture(params=REMOTE_KINDS)
def outage(
    request: pytest.FixtureRequest, tmp_path: Path, providers: Providers
) -> Iterator[Outage]:
    kind = str(request.param)
    module = importlib.import_module(f"tests.backends.providers.{kind}")
    (tmp_path / kind).mkdir()
    server = module.start(tmp_path / kind)
    options = {kind: {"provider": server, **QUICK[kind]}}
    clock = FakeClock()
    try:
        with four_backend_broker(tmp_path, clock, providers, options) as broker:
            apis = {k: Api(broker, k, clock) for k in KINDS}
            yield Outage(broker, kind, apis, server)
    finally:
        server.stop()


def ready(outage: Outage) -> tuple[int, dict[str, Any]]:
    response = outage.broker.call("GET", "/readyz")
    return response.status_code, response.json()


def test_readiness_reports_every_backend_by_environment_and_name(
    outage: Outage,
) -> None:
    """Each backend is a check of its own, `ENV/NAME`, beside the store."""
    status, body = ready(outage)

    assert status == 200
    assert body == {
        "status": "ready",
        "checks": {"store": "ok", "audit": "ok"}
        | {f"{kind}/{kind}": "ok" for kind in KINDS},
    }


def test_a_stopped_store_makes_readiness_503_naming_it(outage: Outage) -> None:
    """Only the stopped store's check fails, and the answer is 503."""
    outage.stop()

    status, body = ready(outage)

    assert status == 503
    assert body["status"] == "not_ready"
    assert {name for name, check in body["checks"].items() if check != "ok"} == {
        f"{outage.kind}/{outage.kind}"
    }


def test_reads_from_a_stopped_store_are_503_with_a_clear_reason(
    outage: Outage,
) -> None:
    """503 naming the store; no address, value or traceback in the answer."""
    api = outage.apis[outage.kind]
    api.version_of(api.put("down/db", CANARY))
    outage.stop()

    response = api.get("down/db")

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
    others = [kind for kind in KINDS if kind != outage.kind]
    for kind in others:
        outage.apis[kind].version_of(outage.apis[kind].put("up/db", f"<{kind}>"))
    outage.stop()

    values = {kind: outage.apis[kind].get("up/db").json()["value"] for kind in others}

    assert values == {kind: f"<{kind}>" for kind in others}


def test_listing_a_stopped_store_is_503_not_an_empty_page(outage: Outage) -> None:
    """Nothing listed is never taken for "nothing there" (case C18)."""
    api = outage.apis[outage.kind]
    api.version_of(api.put("listed/db", "x"))
    outage.stop()

    response = api.call("GET", "secrets", params={"prefix": "listed/"})

    assert (response.status_code, response.json()["error"]) == (
        503, "backend_unavailable",
    )  # fmt: skip
