"""Revocation across broker replicas on one store (case C08), and what the
feed brings: the poll on every database, the push on PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from service.broker import Broker
from service.config import load_settings
from service.errors import AuthenticationFailed
from service.revocation_set import Kind
from service.store.notify import CHANNEL
from service.store.revocation_tables import revocations
from service.store.tables import metadata
from tests.service.conftest import FakeClock
from tests.service.harness import PUBLIC_URL
from tests.service.revocation_setup import VALUE, Replica, replicas

PUSH_DEADLINE_SECONDS = 10.0


@pytest.fixture(params=["sqlite", "postgresql"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_url: str
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
        return
    yield postgres_url
    engine = create_engine(postgres_url)
    with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())
    engine.dispose()


@pytest.fixture
def pair(tmp_path: Path, clock: FakeClock, store: str) -> Iterator[list[Replica]]:
    with replicas(tmp_path, clock, 2, store=store) as both:
        yield both


def test_revocation_through_one_replica_is_refused_by_the_other_after_a_poll(
    pair: list[Replica],
) -> None:
    one, two = pair
    token = one.token()
    assert two.read(token).status_code == 200

    one.form("revoke", "billing-api", token=token)
    two.broker.revocations.feed.poll()

    assert two.read(token).status_code == 401


def test_a_replica_started_later_loads_what_is_revoked(
    tmp_path: Path, clock: FakeClock, store: str
) -> None:
    with replicas(tmp_path, clock, 1, store=store) as (one,):
        token = one.token()
        one.admin("POST", "services/billing-api/revoke", params={"disable": "true"})
        settings = load_settings(tmp_path / "config.yaml")
        late = Broker(settings, public_url=PUBLIC_URL, clock=clock)
        try:
            with pytest.raises(AuthenticationFailed):
                late.environments["dev"].tokens.verify(token)
            assert late.revocations.is_disabled("dev", "billing-api")
        finally:
            late.close()


def test_cached_secret_is_never_served_with_a_revoked_parent_on_any_replica(
    pair: list[Replica], clock: FakeClock
) -> None:
    """Case C08: a service revoked through replica 1; both replicas had the
    token verified and the secret cached; neither serves it again."""
    one, two = pair
    parent = one.token()
    child = one.token(audience="ledger-api", scope="ledger:write")
    for replica in pair:
        assert replica.read(parent).json()["value"] == VALUE
    clock.advance(5 * 60 - 10)

    one.admin("POST", "services/billing-api/revoke", params={"reason": "C08"})
    two.broker.revocations.feed.poll()
    clock.advance(60 - 5 * 60 + 10)

    for replica in pair:
        answer = replica.read(parent)
        assert answer.status_code == 401
        assert VALUE not in answer.text
        assert replica.form("introspect", "ledger-api", token=child).json() == {
            "active": False
        }


def test_an_older_service_state_arriving_late_does_not_undo_a_newer_one(
    pair: list[Replica], clock: FakeClock
) -> None:
    one, two = pair
    one.admin("POST", "services/billing-api/revoke", params={"disable": "true"})
    disabled = next(iter(two.broker.revocations.store.changed_since({"dev"}, 0)))
    one.admin("POST", "services/billing-api/enable")
    two.broker.revocations.feed.poll()

    two.broker.revocations.feed.handle(
        '{"type": "revocation", "env": "dev", "kind": "service", '
        f'"subject": "billing-api", "revoked_at": {disabled.revoked_at}, '
        f'"expires_at": {disabled.expires_at}, "disabled": true, "revision": 1}}'
    )

    assert not two.broker.revocations.is_disabled("dev", "billing-api")


def test_a_key_revoked_through_one_replica_is_refused_and_unpublished_by_the_other(
    pair: list[Replica],
) -> None:
    """Case C09 across replicas; the other replica signs with the replacement."""
    one, two = pair
    token = two.token()
    kid = two.principal(token).kid

    one.admin("POST", f"keys/{kid}/revoke")
    two.broker.revocations.feed.poll()

    jwks = two.local.call("GET", "/v1/dev/jwks.json").json()
    assert kid not in {key["kid"] for key in jwks["keys"]}
    assert two.read(token).status_code == 401
    fresh = two.token()
    assert two.principal(fresh).kid != kid
    assert one.read(fresh).status_code == 200


def test_expired_revocations_are_pruned_from_memory_and_store(
    pair: list[Replica], clock: FakeClock
) -> None:
    one, _ = pair
    one.form("revoke", "billing-api", token=one.token())
    clock.advance(5 * 60 + 120)

    one.broker.revocations.prune()

    with one.broker.engine.connect() as connection:
        left = connection.execute(
            select(func.count())
            .select_from(revocations)
            .where(revocations.c.kind == Kind.TOKEN.value)
        ).scalar_one()
    assert left == 0
    assert one.broker.environments["dev"].tokens.revoked.counts()["token"] == 0


def test_revocation_is_pushed_to_the_other_replica_without_a_poll(
    tmp_path: Path, clock: FakeClock, postgres_url: str
) -> None:
    """LISTEN/NOTIFY: with polling slowed to a minute, the push alone arrives."""
    slow_poll = {"poll_seconds": 60, "lookback_seconds": 0}
    with replicas(tmp_path, clock, 2, store=postgres_url, revocation=slow_poll) as (
        one,
        two,
    ):
        token = one.token()
        two.read(token)
        two.broker.revocations.start()
        try:
            _wait_for_listener(two)
            one.form("revoke", "billing-api", token=token)
            deadline = time.monotonic() + PUSH_DEADLINE_SECONDS
            while two.read(token).status_code == 200:
                assert time.monotonic() < deadline, "the push never arrived"
                time.sleep(0.01)
        finally:
            two.broker.revocations.stop()
            engine = create_engine(postgres_url)
            with engine.begin() as connection:
                for table in reversed(metadata.sorted_tables):
                    connection.execute(table.delete())
            engine.dispose()


def _wait_for_listener(replica: Replica) -> None:
    """Until the replica's LISTEN connection shows in pg_stat_activity."""
    deadline = time.monotonic() + PUSH_DEADLINE_SECONDS
    while True:
        # A new transaction each time: the view is a snapshot per transaction.
        with replica.broker.engine.connect() as connection:
            listening = connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE query = :query"
                    " AND datname = current_database()"
                ),
                {"query": f"LISTEN {CHANNEL}"},
            ).scalar_one()
        if listening:
            return
        assert time.monotonic() < deadline, "the listener never connected"
        time.sleep(0.01)
