"""Token reads: which token read which version, kept in memory, flushed in bulk,
bounded, and pruned once the tokens have expired."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from service.rotation.token_reads import UNLISTED, TokenReads
from service.store.compromise_tables import token_reads
from tests.service.conftest import FakeClock, clock, engine, kek  # noqa: F401


def rows(store: Engine) -> list[tuple[Any, ...]]:
    query = select(
        token_reads.c.version, token_reads.c.service, token_reads.c.jti,
        token_reads.c.expires_at,
    ).order_by(token_reads.c.jti)  # fmt: skip
    with store.connect() as connection:
        return [
            (row.version, row.service, row.jti, row.expires_at.timestamp())
            for row in connection.execute(query)
        ]


def test_reads_stay_in_memory_until_a_flush(
    engine: Engine,  # noqa: F811
    clock: FakeClock,  # noqa: F811
) -> None:
    reads = TokenReads(engine, clock)

    for _ in range(20):
        reads.record("dev", "app/db", "1", "svc-a", "jti-1", clock.now() + 300)

    assert (reads.pending(), rows(engine)) == (1, [])


def test_a_flush_stores_one_row_per_token_and_version(
    engine: Engine,  # noqa: F811
    clock: FakeClock,  # noqa: F811
) -> None:
    reads = TokenReads(engine, clock)
    expires = clock.now() + 300
    for jti, version in (
        ("jti-1", "1"),
        ("jti-1", "1"),
        ("jti-1", "2"),
        ("jti-2", "1"),
    ):
        reads.record("dev", "app/db", version, "svc-a", jti, expires)

    flushed = reads.flush()

    assert flushed == {("dev", "app/db", "1"), ("dev", "app/db", "2")}
    assert rows(engine) == [
        ("1", "svc-a", "jti-1", expires), ("2", "svc-a", "jti-1", expires),
        ("1", "svc-a", "jti-2", expires),
    ]  # fmt: skip


def test_tokens_past_the_limit_are_marked_unlisted_with_the_latest_expiry(
    engine: Engine,  # noqa: F811
    clock: FakeClock,  # noqa: F811
) -> None:
    reads = TokenReads(engine, clock, max_pending=1)
    now = clock.now()
    reads.record("dev", "app/db", "1", "svc-a", "jti-1", now + 100)
    reads.record("dev", "app/db", "1", "svc-b", "jti-2", now + 200)
    reads.record("dev", "app/db", "1", "svc-b", "jti-3", now + 300)
    reads.record("dev", "app/db", "1", "svc-b", "jti-4", now + 250)

    reads.flush()

    assert rows(engine) == [
        ("1", "svc-b", UNLISTED, now + 300), ("1", "svc-a", "jti-1", now + 100),
    ]  # fmt: skip


def test_an_unlisted_mark_moves_only_to_a_later_expiry_across_flushes(
    engine: Engine,  # noqa: F811
    clock: FakeClock,  # noqa: F811
) -> None:
    reads = TokenReads(engine, clock, max_pending=0)
    now = clock.now()
    reads.record("dev", "app/db", "1", "svc-a", "jti-1", now + 300)
    reads.flush()
    reads.record("dev", "app/db", "1", "svc-a", "jti-2", now + 100)
    reads.flush()

    assert rows(engine) == [("1", "svc-a", UNLISTED, now + 300)]


def test_rows_of_expired_tokens_are_pruned(
    engine: Engine,  # noqa: F811
    clock: FakeClock,  # noqa: F811
) -> None:
    reads = TokenReads(engine, clock)
    reads.record("dev", "app/db", "1", "svc-a", "short", clock.now() + 60)
    reads.record("dev", "app/db", "1", "svc-a", "long", clock.now() + 3600)
    reads.flush()
    clock.advance(600)

    deleted = reads.prune()

    assert deleted == 1
    assert [row[2] for row in rows(engine)] == ["long"]
