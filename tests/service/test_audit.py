"""The audit log: records chained per environment, committed, and proven."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine, delete, text, update

from service.audit import RETRY_SECONDS, AuditLog, AuditUnavailable, record_now
from service.audit_chain import GENESIS, records, verify
from service.store.audit_tables import audit_records
from tests.service.conftest import FakeClock


@pytest.fixture
def audit(engine: Engine, clock: FakeClock) -> Iterator[AuditLog]:
    log = AuditLog(engine, clock)
    yield log
    log.close()


def _read_three(audit: AuditLog) -> None:
    for version in ("1", "2", "3"):
        audit.record("prod", "secret.read", actor="billing", target="db",
                     version=version)  # fmt: skip


def test_records_form_one_chain_that_verifies_intact(
    audit: AuditLog, engine: Engine
) -> None:
    _read_three(audit)

    verdict = verify(engine, "prod")

    assert (verdict.intact, verdict.records, verdict.head_seq) == (True, 3, 3)


def test_the_first_record_links_to_genesis_and_each_next_to_the_one_before(
    audit: AuditLog, engine: Engine
) -> None:
    _read_three(audit)

    with engine.connect() as connection:
        found = list(records(connection, "prod"))

    assert [r.prev_hash for r in found] == [GENESIS, found[0].hash, found[1].hash]


def test_each_environment_has_a_chain_of_its_own(
    audit: AuditLog, engine: Engine
) -> None:
    audit.record("dev", "token.issue", actor="app")
    audit.record("prod", "token.issue", actor="app")
    audit.record("dev", "token.issue", actor="app")

    assert (verify(engine, "dev").records, verify(engine, "prod").records) == (2, 1)


def test_an_altered_record_is_named_by_verify(audit: AuditLog, engine: Engine) -> None:
    _read_three(audit)
    with engine.begin() as connection:
        connection.execute(
            update(audit_records)
            .where(audit_records.c.env == "prod", audit_records.c.seq == 2)
            .values(actor="someone-else")
        )

    verdict = verify(engine, "prod")

    assert (verdict.intact, verdict.broken_seq) == (False, 2)


def test_a_removed_record_is_named_by_verify(audit: AuditLog, engine: Engine) -> None:
    _read_three(audit)
    with engine.begin() as connection:
        connection.execute(
            delete(audit_records).where(
                audit_records.c.env == "prod", audit_records.c.seq == 2
            )
        )

    assert verify(engine, "prod").broken_seq == 2


def test_records_removed_from_the_end_are_caught_by_the_head(
    audit: AuditLog, engine: Engine
) -> None:
    _read_three(audit)
    with engine.begin() as connection:
        connection.execute(
            delete(audit_records).where(
                audit_records.c.env == "prod", audit_records.c.seq == 3
            )
        )

    verdict = verify(engine, "prod")

    assert (verdict.intact, verdict.broken_seq) == (False, 3)


def test_concurrent_records_from_many_threads_stay_one_unbroken_chain(
    audit: AuditLog, engine: Engine
) -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda n: audit.record("prod", "secret.read", target=f"s{n}"),
                      range(200)))  # fmt: skip

    verdict = verify(engine, "prod")

    assert (verdict.intact, verdict.records) == (True, 200)


def test_two_writers_on_one_store_append_to_the_same_chain(
    audit: AuditLog, engine: Engine, clock: FakeClock
) -> None:
    other = AuditLog(engine, clock)
    try:
        for n in range(10):
            (audit if n % 2 else other).record("prod", "secret.read", target=f"{n}")
    finally:
        other.close()

    assert verify(engine, "prod").records == 10


def test_a_record_made_without_the_writer_joins_the_same_chain(
    audit: AuditLog, engine: Engine, clock: FakeClock
) -> None:
    audit.record("prod", "token.issue", actor="app")

    record_now(engine, clock, "prod", "credential.create", actor="bootstrap")

    assert (verify(engine, "prod").intact, verify(engine, "prod").records) == (True, 2)


@contextmanager
def _table_gone(engine: Engine, table: str) -> Iterator[None]:
    """The table renamed away, as a store that lost it, then back."""
    with engine.begin() as connection:
        connection.execute(text(f"ALTER TABLE {table} RENAME TO {table}_gone"))
    try:
        yield
    finally:
        with engine.begin() as connection:
            connection.execute(text(f"ALTER TABLE {table}_gone RENAME TO {table}"))


def test_a_failed_commit_fails_the_caller(audit: AuditLog, engine: Engine) -> None:
    with _table_gone(engine, "audit_records"), pytest.raises(AuditUnavailable):
        audit.record("prod", "secret.read", target="db")


def test_the_writer_goes_on_after_a_failed_commit(
    audit: AuditLog, engine: Engine
) -> None:
    with _table_gone(engine, "audit_records"), pytest.raises(AuditUnavailable):
        audit.record("prod", "secret.read")

    assert audit.record("prod", "secret.read").seq == 1


def test_detail_that_is_not_json_is_refused_before_it_is_queued(
    audit: AuditLog,
) -> None:
    with pytest.raises(TypeError):
        audit.record("prod", "secret.read", when=object())


def test_a_closed_log_refuses_to_record(audit: AuditLog) -> None:
    audit.close()

    with pytest.raises(AuditUnavailable):
        audit.record("prod", "secret.read")


def test_overlong_fields_are_cut_to_their_columns(
    audit: AuditLog, engine: Engine
) -> None:
    record = audit.record("prod", "secret.read", actor="a" * 500)

    assert len(record.event.actor or "") == 128
    assert verify(engine, "prod").intact


def test_a_record_made_without_the_writer_fails_as_unavailable(
    engine: Engine, clock: FakeClock
) -> None:
    """`tokenbroker bootstrap` then changes nothing, as the API would not."""
    with _table_gone(engine, "audit_records"), pytest.raises(AuditUnavailable):
        record_now(engine, clock, "prod", "credential.create", "requested")


# The writer's gathering: generous bounds, never timings. A gather that ran to
# its full length (60 s here) would fail each of these by far.
LONG_GATHER = 60.0


def _gathering(audit: AuditLog, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the writer gather every batch, as it does under load, for long."""
    monkeypatch.setattr("service.audit.GATHER_SECONDS", LONG_GATHER)
    monkeypatch.setattr(audit, "_busy", True)


def test_a_batch_commits_once_every_request_being_served_waits_on_it(
    audit: AuditLog, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _gathering(audit, monkeypatch)

    async def three_requests() -> None:
        for _ in range(3):
            audit.request_started()
        reads = [audit.submit("prod", "secret.read", version=str(n)) for n in range(3)]
        await asyncio.wait_for(asyncio.gather(*reads), timeout=10)

    asyncio.run(three_requests())

    assert verify(engine, "prod").records == 3


def test_a_batch_waits_for_a_request_still_at_work_until_it_ends(
    audit: AuditLog, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _gathering(audit, monkeypatch)

    async def one_waits_one_works() -> bool:
        audit.request_started()
        audit.request_started()
        read = asyncio.ensure_future(audit.submit("prod", "secret.read"))
        await asyncio.sleep(0.3)
        held = not read.done()
        audit.request_finished()  # the other request answered without a record
        await asyncio.wait_for(read, timeout=10)
        return held

    held = asyncio.run(one_waits_one_works())

    assert (held, verify(engine, "prod").records) == (True, 1)


def test_a_deferred_event_is_committed_once_the_store_is_back_unasked(
    audit: AuditLog, engine: Engine
) -> None:
    with _table_gone(engine, "audit_records"):
        audit.defer("prod", "secret.write", target="db", version="7")
        # A record waited on fails; its batch tried the deferred one first.
        with pytest.raises(AuditUnavailable):
            audit.record("prod", "secret.read")

    # No other record comes: the writer tries again on its own.
    deadline = time.monotonic() + 10 * RETRY_SECONDS
    while verify(engine, "prod").records == 0 and time.monotonic() < deadline:
        time.sleep(0.05)

    with engine.connect() as connection:
        found = [(r.event.action, r.event.version) for r in records(connection, "prod")]
    assert found == [("secret.write", "7")]


def test_past_the_limit_the_oldest_deferred_event_is_dropped(
    audit: AuditLog, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("service.audit.MAX_DEFERRED", 2)
    with _table_gone(engine, "audit_records"):
        for target in ("a", "b", "c"):
            audit.defer("prod", "secret.write", target=target)
        with pytest.raises(AuditUnavailable):
            audit.record("prod", "secret.read")

    audit.record("prod", "secret.read", target="after")

    with engine.connect() as connection:
        found = [r.event.target for r in records(connection, "prod")]
    assert found == ["b", "c", "after"]
