"""Revocation over the API: RFC 7009 and 7662, by id, by service, by key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.conftest import FakeClock
from tests.service.revocation_setup import VALUE, Replica, replicas


@pytest.fixture
def broker(tmp_path: Path, clock: FakeClock) -> Iterator[Replica]:
    with replicas(tmp_path, clock) as (only,):
        yield only


def actions(broker: Replica) -> list[str]:
    return [record["action"] for record in broker.local.audit_records("dev")]


def test_introspection_answers_the_claims_to_the_tokens_own_service(
    broker: Replica,
) -> None:
    token = broker.token()

    answer = broker.form("introspect", "billing-api", token=token).json()

    assert answer["active"] is True
    assert (answer["sub"], answer["jti"]) == (
        "billing-api",
        broker.principal(token).jti,
    )
    assert answer["scope"] == "secrets:read:payments/*"


def test_introspection_answers_the_audience_of_a_service_to_service_token(
    broker: Replica,
) -> None:
    token = broker.token(audience="ledger-api", scope="ledger:write")

    answer = broker.form("introspect", "ledger-api", token=token).json()

    assert (answer["active"], answer["aud"]) == (True, "ledger-api")


def test_introspection_of_another_services_token_is_inactive(broker: Replica) -> None:
    token = broker.token()

    answer = broker.form("introspect", "ledger-api", token=token).json()

    assert answer == {"active": False}


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "x" * 9000], ids=str.__len__)
def test_introspection_of_anything_invalid_is_inactive(
    broker: Replica, token: str
) -> None:
    answer = broker.form("introspect", "billing-api", token=token)

    assert (answer.status_code, answer.json()) == (200, {"active": False})


def test_introspection_needs_client_authentication(broker: Replica) -> None:
    answer = broker.local.call(
        "POST", "/v1/dev/introspect", data={"token": broker.token()}
    )

    assert (answer.status_code, answer.json()["error"]) == (401, "invalid_client")


def test_a_service_revokes_its_own_token_and_it_stops_working(
    broker: Replica,
) -> None:
    token = broker.token()
    assert broker.read(token).status_code == 200

    revoked = broker.form("revoke", "billing-api", token=token)

    assert revoked.status_code == 200
    assert broker.read(token).status_code == 401
    assert broker.form("introspect", "billing-api", token=token).json() == {
        "active": False
    }


def test_revoking_a_token_leaves_the_services_other_tokens_working(
    broker: Replica,
) -> None:
    kept, revoked = broker.token(), broker.token()

    broker.form("revoke", "billing-api", token=revoked)

    assert broker.read(kept).status_code == 200


def test_revoking_an_invalid_token_answers_200_and_changes_nothing(
    broker: Replica,
) -> None:
    answer = broker.form("revoke", "billing-api", token="not-a-token")

    assert answer.status_code == 200
    assert "token.revoke" not in actions(broker)


def test_a_service_cannot_revoke_another_services_token(broker: Replica) -> None:
    token = broker.token()

    answer = broker.form("revoke", "ledger-api", token=token)

    assert (answer.status_code, answer.json()["error"]) == (400, "unauthorized_client")
    assert broker.read(token).status_code == 200


def test_admin_revokes_a_token_by_its_id_without_holding_it(broker: Replica) -> None:
    token = broker.token()
    jti = broker.principal(token).jti

    answer = broker.admin("POST", f"tokens/{jti}/revoke", params={"reason": "leak"})

    assert answer.status_code == 200
    assert broker.read(token).status_code == 401


def test_revocation_by_id_is_audited_by_id_never_by_token(broker: Replica) -> None:
    token = broker.token()
    jti = broker.principal(token).jti

    broker.admin("POST", f"tokens/{jti}/revoke", params={"reason": "leak"})

    record = next(
        r for r in broker.local.audit_records("dev") if r["action"] == "token.revoke"
    )
    assert (record["actor"], record["target"]) == ("admin", jti)
    assert record["detail"]["reason"] == "leak"
    assert token not in str(broker.local.audit_records("dev"))


def test_cached_token_is_refused_after_revocation(broker: Replica) -> None:
    """Revocation is checked on every request, also on a verification cache hit."""
    token = broker.token()
    for _ in range(3):
        broker.read(token)

    broker.form("revoke", "billing-api", token=token)

    assert broker.read(token).status_code == 401


def test_service_revocation_stops_every_token_of_the_service(
    broker: Replica, clock: FakeClock
) -> None:
    first = broker.token()
    child = broker.token(audience="ledger-api", scope="ledger:write")
    other = broker.token("ledger-api")

    answer = broker.admin("POST", "services/billing-api/revoke")

    assert answer.json()["disabled"] is False
    assert broker.read(first).status_code == 401
    assert broker.form("introspect", "ledger-api", token=child).json() == {
        "active": False
    }
    assert broker.form("introspect", "ledger-api", token=other).json()["active"]


def test_tokens_issued_after_a_service_revocation_work(
    broker: Replica, clock: FakeClock
) -> None:
    broker.admin("POST", "services/billing-api/revoke")
    clock.advance(1)

    assert broker.read(broker.token()).status_code == 200


def test_no_token_is_born_revoked_in_the_second_of_a_service_revocation(
    broker: Replica,
) -> None:
    """With the clock standing still the broker refuses rather than mint one."""
    broker.admin("POST", "services/billing-api/revoke")

    answer = broker.token_response()

    assert (answer.status_code, answer.json()["error"]) == (
        503,
        "temporarily_unavailable",
    )


def test_disabled_service_gets_no_new_token(broker: Replica, clock: FakeClock) -> None:
    broker.admin("POST", "services/billing-api/revoke", params={"disable": "true"})
    clock.advance(5)

    answer = broker.token_response()

    assert (answer.status_code, answer.json()["error"]) == (401, "invalid_client")


def test_enabled_service_gets_tokens_again_but_its_old_ones_stay_dead(
    broker: Replica, clock: FakeClock
) -> None:
    old = broker.token()
    broker.admin("POST", "services/billing-api/revoke", params={"disable": "true"})
    clock.advance(5)

    answer = broker.admin("POST", "services/billing-api/enable")
    clock.advance(1)

    assert answer.json()["disabled"] is False
    assert broker.read(broker.token()).status_code == 200
    assert broker.read(old).status_code == 401


def test_revoking_without_disable_keeps_a_disabled_service_disabled(
    broker: Replica, clock: FakeClock
) -> None:
    broker.admin("POST", "services/billing-api/revoke", params={"disable": "true"})

    answer = broker.admin("POST", "services/billing-api/revoke")
    clock.advance(5)

    assert answer.json()["disabled"] is True
    assert broker.token_response().status_code == 401


def test_an_admin_cannot_disable_itself(broker: Replica) -> None:
    answer = broker.admin("POST", "services/admin/revoke", params={"disable": "true"})

    assert answer.status_code == 409


def test_service_revocation_needs_admin(broker: Replica) -> None:
    answer = broker.local.call(
        "POST",
        "/v1/dev/services/ledger-api/revoke",
        headers=broker.local.bearer(broker.token()),
    )

    assert answer.status_code == 403


def test_each_step_of_a_disabling_revocation_is_audited(broker: Replica) -> None:
    broker.admin(
        "POST", "services/billing-api/revoke",
        params={"disable": "true", "reason": "compromised host"},
    )  # fmt: skip

    records = [
        r for r in broker.local.audit_records("dev") if r["target"] == "billing-api"
    ]
    assert [r["action"] for r in records][-2:] == ["service.revoke", "service.disable"]
    assert {r["detail"]["reason"] for r in records[-2:]} == {"compromised host"}


def test_revocations_are_published_as_events(broker: Replica) -> None:
    events: list[dict[str, object]] = []
    broker.broker.revocations.publish = events.append
    jti = broker.principal(broker.token()).jti

    broker.admin("POST", f"tokens/{jti}/revoke")
    broker.admin("POST", "services/ledger-api/revoke")

    assert [event["type"] for event in events] == [
        "tokenbroker.revocation.token",
        "tokenbroker.revocation.service",
    ]
    assert [event["subject"] for event in events] == [jti, "ledger-api"]


def test_discovery_names_the_introspection_and_revocation_endpoints(
    broker: Replica,
) -> None:
    found = broker.local.call("GET", "/v1/dev/.well-known/openid-configuration").json()

    assert found["introspection_endpoint"] == "http://broker.test/v1/dev/introspect"
    assert found["revocation_endpoint"] == "http://broker.test/v1/dev/revoke"


def test_revoked_key_leaves_the_jwks_and_its_cached_tokens_are_refused(
    broker: Replica,
) -> None:
    """Case C09 at the broker: refused at once, on a cache hit too."""
    old_token = broker.token()
    broker.read(old_token)
    old_kid = broker.principal(old_token).kid

    answer = broker.admin("POST", f"keys/{old_kid}/revoke", params={"reason": "leak"})
    new_token = broker.token()

    published = {
        k["kid"] for k in broker.local.call("GET", "/v1/dev/jwks.json").json()["keys"]
    }
    assert answer.json()["replacement"] in published
    assert old_kid not in published
    assert broker.read(old_token).status_code == 401
    assert broker.read(new_token).json()["value"] == VALUE


def test_key_revocation_is_audited_with_its_replacement(broker: Replica) -> None:
    kid = broker.principal(broker.token()).kid

    replacement = broker.admin("POST", f"keys/{kid}/revoke").json()["replacement"]

    records = broker.local.audit_records("dev")
    assert [(r["action"], r["target"]) for r in records][-2:] == [
        ("key.revoke", kid),
        ("key.create", replacement),
    ]


def test_keys_listing_shows_each_keys_state(broker: Replica) -> None:
    kid = broker.principal(broker.token()).kid
    waiting = broker.admin("POST", "keys/rotate", params={"overlap_seconds": 600})

    states = {k["kid"]: k["state"] for k in broker.admin("GET", "keys").json()["keys"]}

    assert states == {kid: "signing", waiting.json()["kid"]: "published"}


def test_a_refused_key_revocation_is_audited_as_one(broker: Replica) -> None:
    answer = broker.local.call(
        "POST",
        "/v1/dev/keys/some-kid/revoke",
        headers=broker.local.bearer(broker.token()),
    )

    record = broker.local.audit_records("dev")[-1]
    assert answer.status_code == 403
    assert (record["action"], record["outcome"]) == ("key.revoke", "denied")


def test_introspection_is_audited_with_the_jti_it_answered_for(
    broker: Replica,
) -> None:
    token = broker.token()

    broker.form("introspect", "billing-api", token=token)

    record = broker.local.audit_records("dev")[-1]
    assert (record["action"], record["target"]) == (
        "token.introspect",
        broker.principal(token).jti,
    )
    assert token not in str(record)
