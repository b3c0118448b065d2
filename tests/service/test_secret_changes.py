"""A secret written, rotated, retired or refreshed through one broker is read
anew by every broker on the store (case C07): by the poll on every database,
by the push on PostgreSQL.

The brokers' clock stands still, so no cached version expires on its own: the
other broker reads the new version only because it was told of the change.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import structlog.testing
from sqlalchemy import Engine, func, select, text

from service.secret_changes import PRUNE_SLACK_SECONDS
from service.sensitive import Sensitive
from service.store.secret_change_tables import secret_changes as table
from tests.service.compromise_setup import (
    ENV,
    PUSH_DEADLINE_SECONDS,
    SECRET,
    VALUE,
    Node,
    nodes,
    postgres_store,  # noqa: F401
    store,  # noqa: F401
    wait_for_listener,
)
from tests.service.conftest import FakeClock

NEW_VALUE = "sk-written-through-the-other-broker"
OUT_OF_BAND = "sk-written-in-the-store-itself"
# The feed's own thread polls, often, and listens on PostgreSQL unless told not to.
POLLING = {"poll_seconds": 0.02, "lookback_seconds": 10.0, "listen": False}
PUSHED = {"poll_seconds": 60, "lookback_seconds": 0}


@pytest.fixture
def pair(
    tmp_path: Path,
    clock: FakeClock,
    store: str,  # noqa: F811
) -> Iterator[list[Node]]:
    with nodes(tmp_path, clock, 2, store=store) as both:
        yield both


def _write(node: Node) -> str:
    """A new current version written through `node`; answers its version."""
    written = node.admin("PUT", f"secrets/{SECRET}", json={"value": NEW_VALUE})
    assert written.status_code == 200, written.text
    return str(written.json()["version"])


def _rotate(node: Node) -> str:
    """A rotation through `node`, finished at once; answers the new version."""
    rotated = node.admin("POST", f"secrets/{SECRET}/rotate")
    assert rotated.json()["state"] == "grace", rotated.text
    return str(rotated.json()["new_version"])


CHANGES: dict[str, Callable[[Node], str]] = {"write": _write, "rotate": _rotate}


def _version(node: Node, token: str, **params: str) -> Any:
    return node.read(token, **params).json()["version"]


def _read_into_cache(node: Node, token: str) -> None:
    """One read, which leaves the current version in the node's cache."""
    assert node.read(token).json()["value"] == VALUE


def _until_served(node: Node, token: str, version: str) -> None:
    """Read through `node` until it answers `version`."""
    deadline = time.monotonic() + PUSH_DEADLINE_SECONDS
    while _version(node, token) != version:
        assert time.monotonic() < deadline, "the change never reached the broker"
        time.sleep(0.01)


@contextmanager
def _feeds_running(*running: Node) -> Iterator[None]:
    for node in running:
        node.broker.revocations.start()
    try:
        yield
    finally:
        for node in running:
            node.broker.revocations.stop()


@contextmanager
def _changes_unrecordable(engine: Engine) -> Iterator[None]:
    """The secret-change table renamed away, as a store that lost it, then back."""
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE secret_changes RENAME TO changes_gone"))
    try:
        yield
    finally:
        with engine.begin() as connection:
            connection.execute(
                text("ALTER TABLE changes_gone RENAME TO secret_changes")
            )


def test_a_secret_written_through_one_broker_is_read_new_from_the_other_after_a_poll(
    pair: list[Node],
) -> None:
    one, two = pair
    token = two.token()
    assert two.read(token).json()["value"] == VALUE

    version = _write(one)
    cached = two.read(token).json()["value"]
    two.catch_up()

    assert cached == VALUE
    answer = two.read(token).json()
    assert (answer["version"], answer["value"]) == (version, NEW_VALUE)


def test_a_rotation_finished_through_one_broker_is_read_new_from_the_other(
    pair: list[Node],
) -> None:
    one, two = pair
    token = two.token()
    old = _version(two, token)

    new = _rotate(one)
    two.catch_up()

    assert new != old
    assert _version(two, token) == new
    assert _version(two, token, stage="previous") == old


def test_a_version_retired_through_one_broker_is_not_served_from_the_others_cache(
    pair: list[Node],
) -> None:
    one, two = pair
    token = two.token()
    _rotate(one)
    two.catch_up()
    assert two.read(token, stage="previous").status_code == 200
    rotation = one.broker.rotation
    [record] = rotation.store.in_grace()
    claimed = rotation.store.claim(
        record.id, rotation.owner, rotation.settings.lease_seconds
    )
    assert claimed is not None

    rotation.retirement.retire(claimed)
    two.catch_up()

    assert two.read(token, stage="previous").status_code == 410


def test_a_change_is_applied_once_however_often_a_poll_finds_it(
    pair: list[Node],
) -> None:
    one, two = pair

    _write(one)

    assert two.broker.secret_changes.poll() == 1
    assert two.broker.secret_changes.poll() == 0
    assert one.broker.secret_changes.poll() == 0


def test_changes_no_poll_can_read_back_any_more_are_deleted(
    pair: list[Node], clock: FakeClock
) -> None:
    one = pair[0]
    _write(one)
    kept = one.broker.secret_changes.prune()
    settings = one.broker.settings.revocation

    clock.advance(
        settings.lookback_seconds + settings.poll_seconds + PRUNE_SLACK_SECONDS + 1
    )
    pruned = one.broker.secret_changes.prune()

    assert kept == 0
    assert pruned >= 1
    with one.broker.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(table)).scalar() == 0


def test_refresh_makes_every_broker_read_a_value_changed_in_its_store(
    pair: list[Node],
) -> None:
    """Written outside the broker, in the store itself: no broker knew."""
    one, two = pair
    tokens = [one.token(), two.token()]
    for node, token in zip(pair, tokens, strict=True):
        assert node.read(token).json()["value"] == VALUE
    backend = one.broker.environments[ENV].default_backend
    written = backend.write(SECRET, Sensitive.from_text(OUT_OF_BAND), binary=False)

    refreshed = one.admin("POST", f"secrets/{SECRET}/refresh")
    two.catch_up()

    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["version"] == written.version
    for node, token in zip(pair, tokens, strict=True):
        assert node.read(token).json()["value"] == OUT_OF_BAND


def test_refresh_needs_the_rotate_permission(pair: list[Node]) -> None:
    """A reader cannot make every broker go to the store on each call."""
    one = pair[0]

    refused = one.local.call(
        "POST", f"/v1/{ENV}/secrets/{SECRET}/refresh",
        headers=one.local.bearer(one.token("billing-api")),
    )  # fmt: skip

    assert refused.status_code == 403


def test_a_refresh_the_store_cannot_record_is_503_and_this_broker_reads_anew(
    pair: list[Node],
) -> None:
    one = pair[0]
    token = one.token()
    assert one.read(token).json()["value"] == VALUE
    backend = one.broker.environments[ENV].default_backend
    backend.write(SECRET, Sensitive.from_text(OUT_OF_BAND), binary=False)

    with _changes_unrecordable(one.broker.engine):
        refused = one.admin("POST", f"secrets/{SECRET}/refresh")

    assert (refused.status_code, refused.json()["error"]) == (503, "store_unavailable")
    assert one.read(token).json()["value"] == OUT_OF_BAND


def test_a_write_the_store_cannot_announce_still_answers_its_version(
    pair: list[Node],
) -> None:
    """The write has happened; the others' caches expire within their lifetime."""
    one = pair[0]

    with (
        _changes_unrecordable(one.broker.engine),
        structlog.testing.capture_logs() as logs,
    ):
        written = one.admin("PUT", f"secrets/{SECRET}", json={"value": NEW_VALUE})

    assert written.status_code == 200, written.text
    unannounced = [e for e in logs if e["event"] == "secret_change_unannounced"]
    assert [(e["secret"], e["cause"]) for e in unannounced] == [(SECRET, "write")]
    assert NEW_VALUE not in repr(logs)


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_change_is_polled_by_the_other_brokers_own_thread(
    tmp_path: Path,
    clock: FakeClock,
    store: str,  # noqa: F811
    change: str,
) -> None:
    """No push (SQLite has none; PostgreSQL's is turned off): the poll alone."""
    with nodes(tmp_path, clock, 3, store=store, revocation=POLLING) as (one, *others):
        tokens = [other.token() for other in others]
        for other, token in zip(others, tokens, strict=True):
            _read_into_cache(other, token)

        with _feeds_running(*others):
            version = CHANGES[change](one)
            for other, token in zip(others, tokens, strict=True):
                _until_served(other, token, version)


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_change_is_pushed_to_the_other_broker_without_a_poll(
    tmp_path: Path,
    clock: FakeClock,
    postgres_store: str,  # noqa: F811
    change: str,
) -> None:
    """LISTEN/NOTIFY: with polling slowed to a minute, the push alone arrives."""
    with nodes(tmp_path, clock, 2, store=postgres_store, revocation=PUSHED) as (
        one,
        two,
    ):
        token = two.token()
        _read_into_cache(two, token)

        with _feeds_running(two):
            wait_for_listener(two)
            version = CHANGES[change](one)
            _until_served(two, token, version)


def test_refresh_is_pushed_to_the_other_broker_without_a_poll(
    tmp_path: Path,
    clock: FakeClock,
    postgres_store: str,  # noqa: F811
) -> None:
    with nodes(tmp_path, clock, 2, store=postgres_store, revocation=PUSHED) as (
        one,
        two,
    ):
        token = two.token()
        _read_into_cache(two, token)
        backend = one.broker.environments[ENV].default_backend
        written = backend.write(SECRET, Sensitive.from_text(OUT_OF_BAND), binary=False)

        with _feeds_running(two):
            wait_for_listener(two)
            assert one.admin("POST", f"secrets/{SECRET}/refresh").status_code == 200
            _until_served(two, token, written.version)
