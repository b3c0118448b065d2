"""What readers see around a rotation (case C07)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from backends.base import SecretVersion
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


def test_c07_a_read_overlapping_the_finish_never_caches_the_old_version(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old version fetched just before the promote is answered once, and not
    kept: the next read in this process sees the new one."""
    rig.put("app/db", "<PW1>")
    local = rig.backend

    class RotatedDuringRead:
        """The local backend; a rotation finishes while the first read is out."""

        rotated = False

        def __getattr__(self, name: str) -> Any:
            return getattr(local, name)

        def read(self, path: str, **options: Any) -> SecretVersion:
            found = local.read(path, **options)
            if not self.rotated:
                self.rotated = True
                rig.rotate()
            return found

    wrapped = RotatedDuringRead()
    monkeypatch.setitem(rig.environment.backends, "local", wrapped)
    monkeypatch.setattr(rig.environment, "default_backend", wrapped)
    assert rig.read("app/db", "svc-a").version == "1"

    assert rig.read("app/db", "svc-a").version == "2"
