"""Grace and retirement of the previous version (case C03, `when-unused`)."""

from __future__ import annotations

import pytest

from backends.base import Stage
from service.errors import VersionDisabled
from service.rotation.records import State
from tests.rotation.conftest import Rig

HOUR = 3600.0


def rotated(rig: Rig, name: str = "app/db") -> str:
    rig.put(name, "<PW1>")
    return rig.rotate(name).id


def test_c03_previous_stays_readable_during_grace(rig: Rig) -> None:
    rotated(rig)

    rig.clock.advance(HOUR - 1)
    rig.service.retirement.retire_due()

    assert rig.read("app/db", "svc-a", stage=Stage.PREVIOUS).value.reveal() == b"<PW1>"


def test_c03_previous_is_not_revoked_at_the_target_during_grace(rig: Rig) -> None:
    rotated(rig)

    rig.clock.advance(60)
    rig.service.retirement.retire_due()

    assert rig.target.revoked == []


def test_c03_previous_is_revoked_and_disabled_once_grace_ends(rig: Rig) -> None:
    rotation_id = rotated(rig)

    rig.clock.advance(HOUR)
    rig.service.retirement.retire_due()

    assert rig.target.revoked == [b"<PW1>"]
    with pytest.raises(VersionDisabled):
        rig.read("app/db", "svc-a", stage=Stage.PREVIOUS)
    assert rig.service.store.get(rotation_id).state is State.COMPLETED  # type: ignore[union-attr]
    assert rig.event_types()[-1] == "previous_retired"


def test_retiring_leaves_the_current_version_readable(rig: Rig) -> None:
    rotated(rig)

    rig.clock.advance(HOUR)
    rig.service.retirement.retire_due()

    assert rig.read("app/db", "svc-a").value.reveal() == b"<PW2>"


def test_no_grace_rotation_retires_the_previous_version_at_once(rig: Rig) -> None:
    rig.put("app/db", "<PW1>")

    rotation = rig.rotate(no_grace=True)

    assert rotation.state is State.COMPLETED
    assert rig.target.revoked == [b"<PW1>"]
    with pytest.raises(VersionDisabled):
        rig.backend.read("app/db", version="1")


def test_a_newer_rotation_retires_the_version_that_fell_off_previous(
    rig: Rig,
) -> None:
    first = rotated(rig)
    rig.clock.advance(60)
    rig.rotate()

    rig.service.retirement.retire_due()

    assert rig.service.store.get(first).state is State.COMPLETED  # type: ignore[union-attr]
    assert rig.stages() == {Stage.CURRENT: "3", Stage.PREVIOUS: "2"}


def test_when_unused_retires_once_every_reader_has_moved(rig: Rig) -> None:
    rig.put("app/lazy", "<PW1>")
    rig.read("app/lazy", "svc-a")
    rig.read("app/lazy", "svc-b")
    rig.rotate("app/lazy")
    rig.secrets.forget("dev", "app/lazy")

    rig.read("app/lazy", "svc-a")
    rig.read("app/lazy", "svc-b")
    rig.clock.advance(10)
    rig.service.retirement.retire_due()

    assert rig.target.revoked == [b"<PW1>"]


def test_when_unused_keeps_previous_while_a_reader_has_not_moved(rig: Rig) -> None:
    rig.put("app/lazy", "<PW1>")
    rig.read("app/lazy", "svc-a")
    rig.read("app/lazy", "svc-b")
    rig.rotate("app/lazy")

    rig.read("app/lazy", "svc-a")
    rig.clock.advance(2 * HOUR)
    rig.service.retirement.retire_due()

    assert rig.target.revoked == []


def test_when_unused_retires_at_max_grace_even_if_a_reader_stays(rig: Rig) -> None:
    rig.put("app/lazy", "<PW1>")
    rig.read("app/lazy", "svc-b")
    rig.rotate("app/lazy")

    rig.clock.advance(24 * HOUR)
    rig.service.retirement.retire_due()

    assert rig.target.revoked == [b"<PW1>"]


def test_when_unused_waits_for_other_processes_to_flush_their_reads(
    rig: Rig,
) -> None:
    rig.put("app/lazy", "<PW1>")
    rig.rotate("app/lazy")

    rig.clock.advance(1)
    rig.service.retirement.retire_due()

    assert rig.target.revoked == []
