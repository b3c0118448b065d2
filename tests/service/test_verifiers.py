"""Key rotation and revocation as a verifier outside the broker sees them:
a service checking tokens with joserfc and the JWKS alone (cases C09, C10)."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.conftest import FakeClock
from tests.service.revocation_setup import Replica, replicas
from tests.verifier import Rejected, Verifier

ISSUER = "http://broker.test/v1/dev"
OVERLAP = 3600


@pytest.fixture
def broker(tmp_path: Path, clock: FakeClock) -> Iterator[Replica]:
    with replicas(tmp_path, clock) as (only,):
        yield only


def verifier(broker: Replica, clock: FakeClock, cache_seconds: float) -> Verifier:
    return Verifier(
        lambda: broker.local.call("GET", "/v1/dev/jwks.json").json(),
        clock,
        issuer=ISSUER,
        audience="ledger-api",
        cache_seconds=cache_seconds,
        cooldown_seconds=60,
    )


def for_ledger(broker: Replica) -> str:
    return broker.token(audience="ledger-api", scope="ledger:write")


def kid(token: str) -> str:
    header = token.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(header + "==="))["kid"])


def with_kid(token: str, new_kid: str) -> str:
    header, rest = token.split(".", 1)
    decoded = json.loads(base64.urlsafe_b64decode(header + "==="))
    decoded["kid"] = new_kid
    encoded = base64.urlsafe_b64encode(json.dumps(decoded).encode()).decode()
    return encoded.rstrip("=") + "." + rest


def test_new_key_is_in_the_jwks_an_overlap_before_it_signs(
    broker: Replica, clock: FakeClock
) -> None:
    """Case C10: published first, used later."""
    old = kid(for_ledger(broker))

    new = broker.admin("POST", "keys/rotate").json()["kid"]
    published = {
        k["kid"] for k in broker.local.call("GET", "/v1/dev/jwks.json").json()["keys"]
    }
    still = kid(for_ledger(broker))
    clock.advance(OVERLAP)

    assert {old, new} <= published
    assert still == old
    assert kid(for_ledger(broker)) == new


def test_verifier_accepts_the_new_key_after_exactly_one_refetch(
    broker: Replica, clock: FakeClock
) -> None:
    """Case C10: the verifier cached {k1} for an hour; k2 signs from T0."""
    check = verifier(broker, clock, cache_seconds=3600)
    check.verify(for_ledger(broker))
    broker.admin("POST", "keys/rotate", params={"overlap_seconds": 0})
    clock.advance(1)

    claims = check.verify(for_ledger(broker))

    assert claims["aud"] == "ledger-api"
    assert check.fetches == 2


def test_made_up_kids_are_rejected_with_at_most_one_refetch_per_cooldown(
    broker: Replica, clock: FakeClock
) -> None:
    """Case C10: 100 random kids within 10 s cannot force a storm of fetches."""
    check = verifier(broker, clock, cache_seconds=3600)
    genuine = for_ledger(broker)
    check.verify(genuine)
    clock.advance(61)
    rejected = 0

    for _ in range(100):
        clock.advance(0.1)
        with pytest.raises(Rejected):
            check.verify(with_kid(genuine, secrets.token_urlsafe(32)))
        rejected += 1

    assert rejected == 100
    assert check.fetches - 1 <= 1


def test_made_up_kids_are_refused_by_the_broker_with_401(broker: Replica) -> None:
    genuine = broker.token()

    answers = {
        broker.read(with_kid(genuine, secrets.token_urlsafe(32))).status_code
        for _ in range(20)
    }

    assert answers == {401}


def test_old_key_tokens_stay_valid_until_the_old_key_ends(
    broker: Replica, clock: FakeClock
) -> None:
    """Case C10: rotation does not cut short the tokens of the old key."""
    check = verifier(broker, clock, cache_seconds=3600)
    before = for_ledger(broker)
    broker.admin("POST", "keys/rotate", params={"overlap_seconds": 0})
    clock.advance(120)

    assert check.verify(before)["jti"]
    assert broker.form("introspect", "ledger-api", token=before).json()["active"]


def test_revoked_key_is_refused_by_the_broker_at_once_and_by_a_verifier_after_its_cache(
    broker: Replica, clock: FakeClock
) -> None:
    """Case C09: JWKS {k1, k2}, the verifier has k1 cached; k1 is revoked."""
    cache_seconds = 120
    check = verifier(broker, clock, cache_seconds=cache_seconds)
    k1_token = for_ledger(broker)
    k1_reader = broker.token()
    check.verify(k1_token)
    broker.admin("POST", "keys/rotate", params={"overlap_seconds": 0})
    clock.advance(1)
    k2_token = for_ledger(broker)

    broker.admin("POST", f"keys/{kid(k1_token)}/revoke", params={"reason": "C09"})

    assert broker.read(k1_reader).status_code == 401
    assert broker.form("introspect", "ledger-api", token=k1_token).json() == {
        "active": False
    }
    clock.advance(cache_seconds + 1)
    with pytest.raises(Rejected):
        check.verify(k1_token)
    assert check.verify(k2_token)["aud"] == "ledger-api"
    published = {
        k["kid"] for k in broker.local.call("GET", "/v1/dev/jwks.json").json()["keys"]
    }
    assert published == {kid(k2_token)}
