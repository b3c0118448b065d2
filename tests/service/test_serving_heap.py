"""`serve` tunes the garbage collector once start-up is done (service/cli.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from service import cli


@pytest.fixture
def collector() -> Iterator[tuple[int, int, int]]:
    """The test process's thresholds before; its collector as it was, after."""
    thresholds = gc.get_threshold()
    yield thresholds
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_start_up_objects_are_frozen_and_young_ones_collected_less_often(
    collector: tuple[int, int, int],
) -> None:
    cli._settle_heap()

    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (cli.GC_YOUNG_THRESHOLD, *cli.GC_OLDER_THRESHOLDS)
    assert cli.GC_YOUNG_THRESHOLD > 700  # Python's own, which ran per request
    assert gc.get_threshold()[0] > collector[0]
