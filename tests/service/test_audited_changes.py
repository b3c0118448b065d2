"""Every change is audited before it happens: no record of the intent, no change.

The audit store fails for real here: its table renamed away (nothing can be
appended), or a trigger that refuses outcome records only (the intent commits,
the outcome cannot).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import Engine, inspect, text
from starlette.routing import BaseRoute

from service.audit import AuditUnavailable
from service.audit_chain import verify
from service.broker import Broker
from service.config import load_settings
from service.store.database import open_store
from tests.service.conftest import FakeClock
from tests.service.harness import PUBLIC_URL, LocalBroker, local_broker, write_config

POLICY = """\
services:
  billing:
    secrets:
      read: ["payments/*"]
      write: ["payments/*"]
      rotate: ["payments/*"]
  ledger:
    secrets:
      read: ["ledger/*"]
"""
LOCAL = {"default_backend": "local", "backends": {"local": {"type": "local"}}}
EXTRA_POLICY = 'services:\n  extra: {secrets: {read: ["extra/*"]}}\n'
# Routes that change nothing the audit must see first: issuing a token is
# recorded after it is made and before it is handed out, and introspection reads.
UNCHANGING = {("POST", "/v1/{env}/token"), ("POST", "/v1/{env}/introspect")}


@dataclass
class World:
    """A broker with a policy, a billing credential and token, and an admin."""

    local: LocalBroker
    admin_token: str
    billing_secret: str
    billing_token: str

    def admin(self, method: str, path: str, **options: Any) -> httpx.Response:
        return self._call(self.admin_token, method, path, **options)

    def billing(self, method: str, path: str, **options: Any) -> httpx.Response:
        return self._call(self.billing_token, method, path, **options)

    def _call(
        self, token: str, method: str, path: str, **options: Any
    ) -> httpx.Response:
        headers = {**self.local.bearer(token), **options.pop("headers", {})}
        return self.local.call(method, f"/v1/dev/{path}", headers=headers, **options)

    def write(self, name: str = "payments/db", value: str = "<V1>") -> httpx.Response:
        return self.billing("PUT", f"secrets/{name}", json={"value": value})

    def records(self, action: str) -> list[dict[str, Any]]:
        return [r for r in self.local.audit_records("dev") if r["action"] == action]


@pytest.fixture
def world(tmp_path: Path, clock: FakeClock) -> Iterator[World]:
    with local_broker(tmp_path, clock) as local:
        assert local.put_policy("dev", "billing", POLICY).status_code == 200
        secret = local.credential("dev", "billing")
        yield World(
            local,
            local.admin_token("dev"),
            secret,
            local.token("dev", "billing", secret),
        )


Send = Callable[[], httpx.Response]


def _write(world: World) -> Send:
    return world.write


def _apply_policy(world: World) -> Send:
    return lambda: world.admin(
        "PUT", "policies/extra", content=EXTRA_POLICY,
        headers={"Content-Type": "application/yaml"},
    )  # fmt: skip


def _delete_policy(world: World) -> Send:
    return lambda: world.admin("DELETE", "policies/billing")


def _create_credential(world: World) -> Send:
    return lambda: world.admin("POST", "services/billing/credentials")


def _revoke_credential(world: World) -> Send:
    listed = world.admin("GET", "services/billing/credentials").json()
    credential_id = listed["credentials"][0]["credential_id"]
    return lambda: world.admin(
        "DELETE", f"services/billing/credentials/{credential_id}"
    )


def _rotate(world: World) -> Send:
    world.write()
    return lambda: world.billing("POST", "secrets/payments/db/rotate")


def _refresh(world: World) -> Send:
    world.write()
    return lambda: world.billing("POST", "secrets/payments/db/refresh")


def _rotate_many(world: World) -> Send:
    world.write()
    return lambda: world.billing("POST", "rotations", json={"pattern": "payments/*"})


def _revoke_service(world: World) -> Send:
    return lambda: world.admin("POST", "services/ledger/revoke")


def _enable_service(world: World) -> Send:
    world.admin("POST", "services/ledger/revoke", params={"disable": "true"})
    return lambda: world.admin("POST", "services/ledger/enable")


def _revoke_token(world: World) -> Send:
    return lambda: world.local.call(
        "POST", "/v1/dev/revoke", auth=("billing", world.billing_secret),
        data={"token": world.billing_token},
    )  # fmt: skip


def _revoke_token_by_id(world: World) -> Send:
    jti = jwt.decode(world.billing_token, options={"verify_signature": False})["jti"]
    return lambda: world.admin("POST", f"tokens/{jti}/revoke")


def _compromise_secret(world: World) -> Send:
    world.write()
    return lambda: world.admin(
        "POST", "secrets/payments/db/compromise", json={"reason": "leaked"}
    )


def _compromise_service(world: World) -> Send:
    return lambda: world.admin(
        "POST", "services/ledger/compromise", json={"reason": "taken over"}
    )


def _rotate_key(world: World) -> Send:
    return lambda: world.admin("POST", "keys/rotate")


def _revoke_key(world: World) -> Send:
    kid = jwt.get_unverified_header(world.billing_token)["kid"]
    return lambda: world.admin("POST", f"keys/{kid}/revoke")


# Each route that changes something, and how to ask it for a change that
# succeeds when the audit log works.
CASES: dict[tuple[str, str], Callable[[World], Send]] = {
    ("PUT", "/v1/{env}/secrets/{name:path}"): _write,
    ("PUT", "/v1/{env}/policies/{name}"): _apply_policy,
    ("DELETE", "/v1/{env}/policies/{name}"): _delete_policy,
    ("POST", "/v1/{env}/services/{service}/credentials"): _create_credential,
    ("DELETE", "/v1/{env}/services/{service}/credentials/{credential_id}"): (
        _revoke_credential
    ),
    ("POST", "/v1/{env}/secrets/{name:path}/rotate"): _rotate,
    ("POST", "/v1/{env}/secrets/{name:path}/refresh"): _refresh,
    ("POST", "/v1/{env}/rotations"): _rotate_many,
    ("POST", "/v1/{env}/services/{service}/revoke"): _revoke_service,
    ("POST", "/v1/{env}/services/{service}/enable"): _enable_service,
    ("POST", "/v1/{env}/revoke"): _revoke_token,
    ("POST", "/v1/{env}/tokens/{jti}/revoke"): _revoke_token_by_id,
    ("POST", "/v1/{env}/secrets/{name:path}/compromise"): _compromise_secret,
    ("POST", "/v1/{env}/services/{service}/compromise"): _compromise_service,
    ("POST", "/v1/{env}/keys/rotate"): _rotate_key,
    ("POST", "/v1/{env}/keys/{kid}/revoke"): _revoke_key,
}


def _stored(engine: Engine) -> dict[str, list[str]]:
    """Every row of every table but the audit's, to compare before and after."""
    with engine.connect() as connection:
        names = [
            name
            for name in inspect(connection).get_table_names()
            if not name.startswith("audit_")
        ]
        return {
            name: sorted(
                repr(tuple(row))
                for row in connection.execute(text(f'SELECT * FROM "{name}"'))  # noqa: S608
            )
            for name in names
        }


@contextmanager
def _audit_gone(engine: Engine) -> Iterator[None]:
    """The audit table renamed away, as a store that lost it, then back."""
    with engine.begin() as connection:
        connection.execute(
            text("ALTER TABLE audit_records RENAME TO audit_records_gone")
        )
    try:
        yield
    finally:
        with engine.begin() as connection:
            connection.execute(
                text("ALTER TABLE audit_records_gone RENAME TO audit_records")
            )


@contextmanager
def _outcomes_refused(engine: Engine) -> Iterator[None]:
    """A store that takes records of intent but refuses every outcome record."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TRIGGER outcome_refused BEFORE INSERT ON audit_records "
                "WHEN NEW.outcome = 'ok' "
                "BEGIN SELECT RAISE(ABORT, 'the audit store is full'); END"
            )
        )
    try:
        yield
    finally:
        with engine.begin() as connection:
            connection.execute(text("DROP TRIGGER outcome_refused"))


def _api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        # An included router keeps its routes in the router it was made of.
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _api_routes(included.routes)


def test_every_route_that_changes_something_is_a_case_here(world: World) -> None:
    """A new route that changes state cannot miss the checks below."""
    changing = {
        (method, route.path)
        for route in _api_routes(world.local.app.routes)
        for method in route.methods or ()
        if method not in {"GET", "HEAD"}
    }

    assert changing == set(CASES) | UNCHANGING


@pytest.mark.parametrize("route", list(CASES), ids=[f"{m} {p}" for m, p in CASES])
def test_a_change_whose_intent_cannot_be_recorded_is_503_and_changes_nothing(
    world: World, route: tuple[str, str]
) -> None:
    send = CASES[route](world)
    engine = world.local.broker.engine
    before = _stored(engine)

    with _audit_gone(engine):
        response = send()

    assert (response.status_code, response.json()["error"]) == (
        503, "audit_unavailable",
    )  # fmt: skip
    assert _stored(engine) == before


@pytest.mark.parametrize("route", list(CASES), ids=[f"{m} {p}" for m, p in CASES])
def test_a_change_records_its_intent_before_its_outcome_under_one_request_id(
    world: World, route: tuple[str, str]
) -> None:
    send = CASES[route](world)
    seen = len(world.local.audit_records("dev"))

    response = send()

    assert response.status_code < 300, response.text
    request_id = response.headers["x-request-id"]
    mine = [
        r["outcome"]
        for r in world.local.audit_records("dev")[seen:]
        if r["request_id"] == request_id
    ]
    assert mine[0] == "requested" and mine[-1] == "ok", mine


def test_a_write_whose_outcome_cannot_be_recorded_answers_its_version(
    world: World,
) -> None:
    with _outcomes_refused(world.local.broker.engine):
        response = world.write(value="<unrecorded outcome>")

    read = world.billing("GET", "secrets/payments/db").json()
    intent = world.records("secret.write")[0]
    assert response.json()["version"] == read["version"] == "1"
    assert read["value"] == "<unrecorded outcome>"
    assert (intent["outcome"], intent["request_id"]) == (
        "requested", response.headers["x-request-id"],
    )  # fmt: skip


def test_an_outcome_the_store_refused_is_appended_once_it_takes_records(
    world: World,
) -> None:
    with _outcomes_refused(world.local.broker.engine):
        response = world.write(value="<late outcome>")
        held = [r["outcome"] for r in world.records("secret.write")]

    # The next request's records go to the store after the deferred outcome.
    world.billing("GET", "secrets/payments/db")

    request_id = response.headers["x-request-id"]
    mine = [(r["outcome"], r["version"]) for r in world.records("secret.write")
            if r["request_id"] == request_id]  # fmt: skip
    assert (held, mine) == (["requested"], [("requested", None), ("ok", "1")])
    assert verify(world.local.broker.engine, "dev").intact


def test_a_credential_whose_outcome_cannot_be_recorded_is_still_shown_once(
    world: World,
) -> None:
    """Answering 503 would lose a live credential's only copy."""
    with _outcomes_refused(world.local.broker.engine):
        response = world.admin("POST", "services/ledger/credentials")

    assert response.status_code == 201
    secret = response.json()["client_secret"]
    assert world.local.token_response("dev", "ledger", secret).status_code == 200


def test_a_write_records_the_version_it_wrote_in_its_outcome(world: World) -> None:
    world.write()

    found = [(r["outcome"], r["version"]) for r in world.records("secret.write")]

    assert found == [("requested", None), ("ok", "1")]


def test_a_token_issue_and_a_secret_read_add_one_record_each(world: World) -> None:
    """The hot paths pay for one commit, not two."""
    world.write()
    seen = len(world.local.audit_records("dev"))

    world.local.token("dev", "billing", world.billing_secret)
    world.billing("GET", "secrets/payments/db")

    added = [r["action"] for r in world.local.audit_records("dev")[seen:]]
    assert added == ["token.issue", "secret.read"]


def test_a_policy_folder_is_not_applied_while_the_audit_cannot_record(
    tmp_path: Path, clock: FakeClock
) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "billing.yaml").write_text(POLICY)
    config = write_config(tmp_path, {"dev": LOCAL})
    Broker(load_settings(config), public_url=PUBLIC_URL, clock=clock).close()
    store = open_store(load_settings(config).store)

    with _audit_gone(store), pytest.raises(AuditUnavailable):
        Broker(
            load_settings(config, policies_dir=folder), public_url=PUBLIC_URL,
            clock=clock,
        )  # fmt: skip

    assert _stored(store)["policy_documents"] == []
    store.dispose()
