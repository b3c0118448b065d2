"""A secret with `every: 30d` on each backend: rotated on schedule, read all along,
and its previous version disabled once the grace period is over.

The broker's clock moves; its rotation worker makes one pass (`tick`) where the
background thread would. One run covers the four environments at once, as one
worker does, and each test checks one environment's outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.api_contract.api import Api
from tests.api_contract.deployment import KINDS
from tests.service.conftest import FakeClock
from tests.service.harness import LocalBroker

DAY = 86400.0
HOUR = 3600.0
NAME = "scheduled/db"  # declared with `every: 30d` and `grace: 1h` in the policy


@dataclass
class Outcome:
    """What one environment showed over the run."""

    first: str
    before_due: str
    after_due: dict[str, object]
    previous: dict[str, object]
    reads: list[int]
    retired: tuple[int, str]
    previous_retired: tuple[int, str]
    current_retired: int


@pytest.fixture(scope="module")
def run(
    deployment: LocalBroker, apis: dict[str, Api], broker_clock: FakeClock
) -> dict[str, Outcome]:
    worker = deployment.broker.rotation.worker
    first = {k: apis[k].version_of(apis[k].put(NAME, f"<PW1-{k}>")) for k in KINDS}
    reads: dict[str, list[int]] = {kind: [] for kind in KINDS}

    def read_all() -> None:
        for kind in KINDS:
            reads[kind].append(apis[kind].get(NAME, who="svc-a").status_code)

    worker.tick()  # The schedule is planned: first due 30 days from now.
    read_all()
    broker_clock.advance(30 * DAY - 60)
    worker.tick()
    before_due = {k: apis[k].get(NAME).json()["version"] for k in KINDS}
    read_all()

    broker_clock.advance(60)
    worker.tick()
    read_all()
    after_due = {k: apis[k].get(NAME).json() for k in KINDS}
    previous = {k: apis[k].get(NAME, stage="previous").json() for k in KINDS}

    broker_clock.advance(HOUR + 1)
    worker.tick()
    read_all()
    retired = {k: apis[k].get(NAME, version=first[k]) for k in KINDS}
    previous_retired = {k: apis[k].get(NAME, stage="previous") for k in KINDS}
    return {
        kind: Outcome(
            first=first[kind],
            before_due=before_due[kind],
            after_due=after_due[kind],
            previous=previous[kind],
            reads=reads[kind],
            retired=(retired[kind].status_code, retired[kind].json()["error"]),
            previous_retired=(
                previous_retired[kind].status_code,
                previous_retired[kind].json()["error"],
            ),
            current_retired=apis[kind].get(NAME).status_code,
        )
        for kind in KINDS
    }


@pytest.fixture(params=KINDS)
def outcome(request: pytest.FixtureRequest, run: dict[str, Outcome]) -> Outcome:
    return run[str(request.param)]


def test_nothing_rotates_before_the_schedule_is_due(outcome: Outcome) -> None:
    """A minute before the 30 days are up, current is still the first version."""
    assert outcome.before_due == outcome.first


def test_the_secret_rotates_once_the_schedule_is_due(outcome: Outcome) -> None:
    """At 30 days the worker rotates the secret to a new value."""
    assert outcome.after_due["version"] != outcome.first
    assert not str(outcome.after_due["value"]).startswith("<PW1")


def test_the_old_value_stays_previous_during_grace(outcome: Outcome) -> None:
    """Within the hour of grace the first value reads as previous."""
    assert outcome.previous["version"] == outcome.first
    assert str(outcome.previous["value"]).startswith("<PW1-")


def test_no_reader_gets_an_error_at_any_point(outcome: Outcome) -> None:
    """A service reading before, around and after the rotation always gets 200."""
    assert outcome.reads == [200, 200, 200, 200]


def test_the_old_version_is_disabled_after_grace(outcome: Outcome) -> None:
    """Once grace is over the first version reads as disabled, by its id."""
    assert outcome.retired == (410, "version_disabled")


def test_the_previous_stage_is_disabled_after_grace(outcome: Outcome) -> None:
    """The same answer on every store, whether it keeps the label or not."""
    assert outcome.previous_retired == (410, "version_disabled")


def test_current_stays_readable_after_grace(outcome: Outcome) -> None:
    """Retiring the previous version leaves current readable."""
    assert outcome.current_retired == 200
