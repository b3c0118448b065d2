"""What readers see around a rotation (case C07)."""

from __future__ import annotations

import asyncio

from service.secret_access import SecretAccess
from tests.rotation.conftest import Rig, principal


def test_c07_this_process_reads_the_new_version_right_after_finish(rig: Rig) -> None:
    rig.put("app/db", "<PW1>")
    assert rig.read("app/db", "svc-a").version == "1"

    rig.rotate()

    assert rig.read("app/db", "svc-a").version == "2"


def test_c07_another_process_sees_the_new_version_within_its_cache_interval(
    rig: Rig,
) -> None:
    other = SecretAccess(rig.clock, max_value_bytes=65536, cache_seconds=5.0)
    rig.put("app/db", "<PW1>")
    read = other.read(rig.environment, principal("svc-a"), "app/db")
    assert asyncio.run(read).version == "1"
    rig.rotate()
    rig.clock.advance(5.0)

    found = asyncio.run(other.read(rig.environment, principal("svc-a"), "app/db"))

    assert found.version == "2"
