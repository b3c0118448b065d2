"""Readiness includes the audit log, and answers in time whatever a check does."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from service.readiness import Readiness
from service.store.tables import metadata
from tests.service.conftest import FakeClock
from tests.service.harness import LocalBroker, local_broker

ONE_ENV = {
    "dev": {"default_backend": "local", "backends": {"local": {"type": "local"}}}
}


@pytest.fixture
def local(tmp_path: Path, clock: FakeClock) -> Iterator[LocalBroker]:
    with local_broker(tmp_path, clock, ONE_ENV) as broker:
        yield broker


@pytest.fixture
def on_postgres(
    tmp_path: Path, clock: FakeClock, postgres_url: str
) -> Iterator[LocalBroker]:
    """A broker on PostgreSQL whose readiness waits half a second at most."""
    with local_broker(
        tmp_path, clock, ONE_ENV, store=postgres_url, readiness_timeout_seconds=0.5
    ) as broker:
        yield broker
    engine = create_engine(postgres_url)
    with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())
    engine.dispose()


def _ready(local: LocalBroker) -> tuple[int, dict[str, Any]]:
    response = local.call("GET", "/readyz")
    return response.status_code, response.json()["checks"]


def _sql(local: LocalBroker, *statements: str) -> None:
    with local.broker.engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))


def test_readiness_checks_the_audit_log_beside_the_store_and_backends(
    local: LocalBroker,
) -> None:
    assert _ready(local) == (200, {"store": "ok", "audit": "ok", "dev/local": "ok"})


def test_readiness_is_503_while_the_audit_table_is_gone(local: LocalBroker) -> None:
    _sql(local, "ALTER TABLE audit_records RENAME TO audit_gone")

    status, checks = _ready(local)

    assert status == 503
    assert checks == {
        "store": "ok", "audit": "unavailable: audit_unavailable", "dev/local": "ok",
    }  # fmt: skip


def test_readiness_is_503_once_the_store_refuses_audit_records(
    local: LocalBroker,
) -> None:
    """Reads still work there; the failed commit makes readiness try a write."""
    _sql(
        local,
        "CREATE TRIGGER full BEFORE INSERT ON audit_records "
        "BEGIN SELECT RAISE(ABORT, 'the audit store is full'); END",
    )
    assert local.call("GET", "/v1/dev/jwks.json").status_code == 200
    assert local.token_response("dev", "admin", "wrong").status_code == 503

    assert _ready(local)[1]["audit"] == "unavailable: audit_unavailable"


def test_readiness_recovers_without_a_request_once_records_commit_again(
    local: LocalBroker,
) -> None:
    """An orchestrator that took the broker out sends it nothing to commit."""
    _sql(
        local,
        "CREATE TRIGGER full BEFORE INSERT ON audit_records "
        "BEGIN SELECT RAISE(ABORT, 'the audit store is full'); END",
    )
    local.token_response("dev", "admin", "wrong")
    _sql(local, "DROP TRIGGER full")

    assert _ready(local)[0] == 200


def test_readiness_is_503_once_the_audit_writer_has_stopped(
    local: LocalBroker,
) -> None:
    local.broker.audit.close()

    assert _ready(local)[1]["audit"] == "unavailable: audit_unavailable"


@pytest.mark.postgres
def test_a_check_that_hangs_is_reported_within_the_bound_and_the_rest_answer(
    on_postgres: LocalBroker, postgres_url: str
) -> None:
    locker = create_engine(postgres_url)
    with locker.connect() as connection:
        connection.execute(text("LOCK TABLE audit_records IN ACCESS EXCLUSIVE MODE"))
        started = time.monotonic()

        status, checks = _ready(on_postgres)
        again = _ready(on_postgres)

        elapsed = time.monotonic() - started
        connection.rollback()
    locker.dispose()
    assert elapsed < 3
    assert (status, checks) == (
        503, {"store": "ok", "audit": "unavailable: timeout", "dev/local": "ok"},
    )  # fmt: skip
    assert again == (status, checks)
    assert _ready(on_postgres)[0] == 200  # the held check, once the lock is gone


def test_checks_run_at_once_so_the_answer_waits_for_the_slowest_only() -> None:
    readiness = Readiness({f"c{n}": lambda: time.sleep(0.3) for n in range(5)},
                          timeout=5)  # fmt: skip
    started = time.monotonic()

    checks = asyncio.run(readiness.probe())

    assert time.monotonic() - started < 1.2
    assert set(checks.values()) == {"ok"}


def test_a_check_still_running_is_waited_for_again_not_started_twice() -> None:
    release = threading.Event()
    calls: list[int] = []

    def hanging() -> None:
        calls.append(1)
        release.wait(5)

    readiness = Readiness({"slow": hanging}, timeout=0.1)
    first = asyncio.run(readiness.probe())
    second = asyncio.run(readiness.probe())
    release.set()

    assert first == second == {"slow": "unavailable: timeout"}
    assert calls == [1]
