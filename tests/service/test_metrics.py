"""`GET /metrics`: requests by route and status, hot-path latency, backend calls,
cache hits and audit commits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.service.conftest import FakeClock
from tests.service.harness import LocalBroker, local_broker


@pytest.fixture
def local(tmp_path: Path, clock: FakeClock) -> Iterator[LocalBroker]:
    with local_broker(tmp_path, clock) as broker:
        token = broker.admin_token("dev")
        headers = broker.bearer(token)
        broker.call("PUT", "/v1/dev/secrets/app/db", json={"value": "v"},
                    headers=headers)  # fmt: skip
        for _ in range(2):
            broker.call("GET", "/v1/dev/secrets/app/db", headers=headers)
        broker.call("GET", "/v1/dev/secrets/app/missing", headers=headers)
        yield broker


def _samples(local: LocalBroker) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = local.call("GET", "/metrics").text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(local: LocalBroker, name: str, **labels: str) -> float:
    return _samples(local).get((name, frozenset(labels.items())), 0.0)


def test_requests_are_counted_by_route_template_and_status(
    local: LocalBroker,
) -> None:
    route = "/v1/{env}/secrets/{name:path}"

    ok = _value(local, "tokenbroker_http_requests_total", method="GET",
                route=route, status="200")  # fmt: skip
    missing = _value(local, "tokenbroker_http_requests_total", method="GET",
                     route=route, status="404")  # fmt: skip

    assert (ok, missing) == (2, 1)


def test_no_raw_path_becomes_a_label(local: LocalBroker) -> None:
    labels = {value for _, found in _samples(local) for _, value in found}

    assert not any("app/db" in value for value in labels)


def test_token_issue_and_secret_read_latencies_are_histograms(
    local: LocalBroker,
) -> None:
    issued = _value(local, "tokenbroker_token_issue_seconds_count", env="dev")
    read = _value(local, "tokenbroker_secret_read_seconds_count", env="dev")

    assert issued >= 1 and read == 3


def test_backend_calls_are_counted_by_outcome(local: LocalBroker) -> None:
    labels = {"env": "dev", "backend": "local", "operation": "read"}

    ok = _value(local, "tokenbroker_backend_calls_total", outcome="ok", **labels)
    missing = _value(local, "tokenbroker_backend_calls_total", outcome="not_found",
                     **labels)  # fmt: skip

    assert (ok, missing) == (1, 1)


def test_secret_read_cache_hits_and_misses_are_counted(local: LocalBroker) -> None:
    hits = _value(local, "tokenbroker_cache_lookups_total", cache="secret_read",
                  result="hit")  # fmt: skip
    misses = _value(local, "tokenbroker_cache_lookups_total", cache="secret_read",
                    result="miss")  # fmt: skip

    assert (hits, misses) == (1, 2)


def test_audit_commits_are_counted(local: LocalBroker) -> None:
    committed = _value(local, "tokenbroker_audit_records_total")

    assert committed == sum(len(local.audit_records(env)) for env in ("dev", "prod"))
