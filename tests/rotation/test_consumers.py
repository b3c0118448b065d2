"""Consumer tracking: reads aggregated in memory, flushed, merged across processes."""

from __future__ import annotations

from sqlalchemy import func, select

from service.store.rotation_tables import rotation_consumers
from tests.rotation.conftest import Rig


def stored_rows(rig: Rig) -> int:
    with rig.engine.connect() as connection:
        return int(connection.execute(
            select(func.count()).select_from(rotation_consumers)
        ).scalar_one())  # fmt: skip


def test_reads_are_kept_in_memory_until_a_flush(rig: Rig) -> None:
    rig.put("app/db", "<PW1>")

    for _ in range(50):
        rig.read("app/db", "svc-a")

    assert stored_rows(rig) == 0


def test_a_flush_stores_one_row_per_service_and_version(rig: Rig) -> None:
    rig.put("app/db", "<PW1>")
    for _ in range(50):
        rig.read("app/db", "svc-a")
    rig.read("app/db", "svc-b")

    rig.service.consumers.flush()

    assert stored_rows(rig) == 2


def test_consumers_show_first_and_last_read_and_count(rig: Rig) -> None:
    rig.put("app/db", "<PW1>")
    rig.read("app/db", "svc-a")
    rig.clock.advance(30)
    rig.read("app/db", "svc-a")

    [seen] = rig.service.consumers.consumers("dev", "app/db")

    assert (seen.service, seen.version, seen.reads) == ("svc-a", "1", 2)
    assert seen.last_read_at - seen.first_read_at == 30


def test_reads_from_two_processes_merge_in_the_store(rig: Rig) -> None:
    other = rig.another_process()
    rig.put("app/db", "<PW1>")
    rig.read("app/db", "svc-a")
    other.read("app/db", "svc-a")
    other.read("app/db", "svc-a")

    other.service.consumers.flush()
    [seen] = rig.service.consumers.consumers("dev", "app/db")

    assert seen.reads == 3


def test_consumers_show_who_has_moved_to_the_new_version(rig: Rig) -> None:
    rig.put("app/db", "<PW1>")
    rig.read("app/db", "svc-a")
    rig.read("app/db", "svc-b")
    rig.rotate()
    rig.read("app/db", "svc-a")

    seen = rig.service.consumers.consumers("dev", "app/db")

    assert {(c.service, c.version) for c in seen} == {
        ("svc-a", "1"), ("svc-a", "2"), ("svc-b", "1"),
    }  # fmt: skip
