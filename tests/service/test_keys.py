"""Signing keys on a real store: scheduled rotation with overlap (case C10),
emergency revocation (C09) and tokens that never outlive their key (C12)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import jwt
import pytest
import structlog
from sqlalchemy import Engine, event, func, select

from service.crypto import KeyEncryptionKey
from service.errors import Conflict, NotFound
from service.key_schedule import SigningKeySettings
from service.keys import KeyRing, NoSigningKey
from service.store.tables import signing_keys
from service.tokens import TokenAuthority
from tests.service.conftest import FakeClock

DAY = 86400
SETTINGS = SigningKeySettings(
    lifetime_seconds=30 * DAY, overlap_seconds=3600, renew_before_seconds=DAY
)
ISSUER = "https://broker.test/v1/dev"


@pytest.fixture
def ring(engine: Engine, kek: KeyEncryptionKey, clock: FakeClock) -> KeyRing:
    keyring = KeyRing("dev", engine, kek, clock, SETTINGS)
    keyring.load()
    return keyring


@contextmanager
def refusing_new_keys(engine: Engine) -> Iterator[None]:
    """The store refuses new signing keys: rotation made to fail, for real."""
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql(
                "CREATE TRIGGER refuse_keys BEFORE INSERT ON signing_keys "
                "BEGIN SELECT RAISE(ABORT, 'rotation made to fail'); END"
            )
        else:
            connection.exec_driver_sql(
                "CREATE FUNCTION refuse_keys() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'rotation made to fail'; END $$"
            )
            connection.exec_driver_sql(
                "CREATE TRIGGER refuse_keys BEFORE INSERT ON signing_keys "
                "FOR EACH ROW EXECUTE FUNCTION refuse_keys()"
            )
    try:
        yield
    finally:
        with engine.begin() as connection:
            if engine.dialect.name == "sqlite":
                connection.exec_driver_sql("DROP TRIGGER refuse_keys")
            else:
                connection.exec_driver_sql("DROP TRIGGER refuse_keys ON signing_keys")
                connection.exec_driver_sql("DROP FUNCTION refuse_keys()")


def published(ring: KeyRing) -> set[str]:
    return {key["kid"] for key in ring.jwks()["keys"]}


def key_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                select(func.count()).select_from(signing_keys)
            ).scalar_one()
        )


@pytest.mark.parametrize(
    "start",
    [1_800_000_000.0000007, 1_800_000_000.9999996],
    ids=["microsecond", "second"],
)
def test_a_new_environments_first_key_signs_at_once_without_an_alert(
    engine: Engine, kek: KeyEncryptionKey, start: float
) -> None:
    """At a moment the store rounds up to the next microsecond, too."""
    clock = FakeClock(start)

    with structlog.testing.capture_logs() as logs:
        keyring = KeyRing("dev", engine, kek, clock, SETTINGS)
        keyring.load()
        signing = keyring.signing_key()

    events = [entry["event"] for entry in logs]
    assert events.count("signing_key_created") == 1
    assert "signing_key_unavailable" not in events
    assert published(keyring) == {signing.kid}


def test_successor_is_published_an_overlap_before_it_first_signs(
    ring: KeyRing, clock: FakeClock
) -> None:
    """Case C10: verifiers can know the new key before any token carries it."""
    old = ring.signing_key()
    clock.current = old.ends - DAY - 3600 + 1

    still = ring.signing_key()
    new_kids = published(ring) - {old.kid}
    clock.advance(3600)
    after = ring.signing_key()

    assert still.kid == old.kid
    assert len(new_kids) == 1
    assert after.kid in new_kids


def test_old_key_stays_published_until_its_end_then_leaves(
    ring: KeyRing, clock: FakeClock
) -> None:
    old = ring.signing_key()
    clock.current = old.ends - DAY
    ring.signing_key()

    clock.current = old.ends - 1
    kept = old.kid in published(ring)
    clock.current = old.ends
    gone = old.kid not in published(ring)

    assert (kept, gone) == (True, True)


def test_rotation_on_demand_signs_once_its_overlap_has_passed(
    ring: KeyRing, clock: FakeClock
) -> None:
    old = ring.signing_key()

    new = ring.rotate(overlap=600)

    assert new.kid in published(ring)
    assert ring.signing_key().kid == old.kid
    clock.advance(600)
    assert ring.signing_key().kid == new.kid


def test_second_rotation_while_a_key_waits_is_refused(ring: KeyRing) -> None:
    ring.rotate(overlap=600)

    with pytest.raises(Conflict):
        ring.rotate(overlap=600)


def test_revoked_signing_key_is_replaced_by_one_that_signs_at_once(
    ring: KeyRing,
) -> None:
    """Case C09: the compromised key leaves the key set; signing goes on."""
    old = ring.signing_key()

    revoked = ring.revoke(old.kid)

    assert revoked.replacement is not None
    assert ring.signing_key().kid == revoked.replacement
    assert old.kid not in published(ring)
    assert ring.verification_key(old.kid) is None


def test_revoking_a_key_that_no_longer_signs_needs_no_replacement(
    ring: KeyRing, clock: FakeClock
) -> None:
    old = ring.signing_key()
    ring.rotate(overlap=0)
    clock.advance(1)

    revoked = ring.revoke(old.kid)

    assert revoked.replacement is None
    assert published(ring) == {ring.signing_key().kid}


def test_revoking_a_key_twice_reports_it_was_revoked_already(ring: KeyRing) -> None:
    kid = ring.signing_key().kid
    ring.revoke(kid)

    again = ring.revoke(kid)

    assert (again.newly, again.replacement) == (False, None)


def test_revoking_an_unknown_kid_is_not_found(ring: KeyRing) -> None:
    with pytest.raises(NotFound):
        ring.revoke("no-such-kid")


def test_a_ring_told_of_a_revocation_signs_with_the_replacement_from_the_store(
    ring: KeyRing, engine: Engine, kek: KeyEncryptionKey, clock: FakeClock
) -> None:
    """Another process drops the key and finds the replacement; no third key."""
    other = KeyRing("dev", engine, kek, clock, SETTINGS)
    other.load()
    revoked = ring.revoke(ring.signing_key().kid)

    other.drop(revoked.kid)

    assert other.signing_key().kid == revoked.replacement
    assert key_count(engine) == 2


def test_two_rings_on_one_store_agree_on_one_successor(
    ring: KeyRing, engine: Engine, kek: KeyEncryptionKey, clock: FakeClock
) -> None:
    other = KeyRing("dev", engine, kek, clock, SETTINGS)
    other.load()
    clock.current = ring.signing_key().ends - DAY

    ring.signing_key()
    other.signing_key()

    assert key_count(engine) == 2
    assert published(ring) == published(other)


def test_token_is_clamped_to_its_key_end_when_rotation_fails(
    ring: KeyRing, engine: Engine, clock: FakeClock
) -> None:
    """Case C12 at T0: the key ends in 30 s and no new key can be made."""
    authority = TokenAuthority("dev", ISSUER, ring, clock)
    key_end = ring.signing_key().ends
    clock.current = key_end - 30

    with refusing_new_keys(engine):
        issued = authority.issue("svc", ["admin"], audience=None, ttl=300)

    claims = jwt.decode(issued.access_token, options={"verify_signature": False})
    assert claims["exp"] <= key_end
    assert issued.expires_in == claims["exp"] - claims["iat"] > 0


def test_no_token_is_issued_once_the_key_has_ended_and_rotation_fails(
    ring: KeyRing, engine: Engine, clock: FakeClock
) -> None:
    """Case C12 at T0 + 60 s: a loud 503, never a token born expired."""
    authority = TokenAuthority("dev", ISSUER, ring, clock)
    clock.current = ring.signing_key().ends - 30

    with refusing_new_keys(engine):
        authority.issue("svc", ["admin"], audience=None, ttl=300)
        clock.advance(60)
        with pytest.raises(NoSigningKey):
            authority.issue("svc", ["admin"], audience=None, ttl=300)


def test_failed_rotation_is_retried_after_a_wait_not_on_every_request(
    ring: KeyRing, engine: Engine, clock: FakeClock
) -> None:
    attempts: list[str] = []
    event.listen(
        engine,
        "before_cursor_execute",
        lambda *a: attempts.append(a[2]) if "INSERT INTO signing_keys" in a[2] else 0,
    )
    clock.current = ring.signing_key().ends - 30

    with refusing_new_keys(engine):
        for _ in range(20):
            ring.signing_key()
        clock.advance(SETTINGS.retry_seconds)
        with pytest.raises(NoSigningKey):
            ring.signing_key()

    assert len(attempts) == 2


def test_signing_recovers_once_the_store_takes_new_keys_again(
    ring: KeyRing, engine: Engine, clock: FakeClock
) -> None:
    old = ring.signing_key()
    clock.current = old.ends + 10
    with refusing_new_keys(engine), pytest.raises(NoSigningKey):
        ring.signing_key()

    clock.advance(SETTINGS.retry_seconds)

    assert ring.signing_key().kid != old.kid
