"""Client credentials: generated, hashed, at most two live."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from service.credentials import CredentialStore, InvalidClient
from service.crypto import KeyEncryptionKey
from service.errors import Conflict
from service.sensitive import Sensitive
from service.store.tables import credentials
from tests.service.conftest import FakeClock


@pytest.fixture
def store(engine: Engine, kek: KeyEncryptionKey, clock: FakeClock) -> CredentialStore:
    return CredentialStore(engine, kek, clock)


def test_new_secret_has_at_least_256_random_bits(store: CredentialStore) -> None:
    secrets = {store.create("dev", f"svc{i}").secret.reveal_text() for i in range(3)}

    assert len(secrets) == 3
    assert all(len(secret) >= 4 + 43 for secret in secrets)


def test_created_secret_authenticates(store: CredentialStore) -> None:
    created = store.create("dev", "svc")

    assert store.authenticate("dev", "svc", created.secret) == "svc"


def test_wrong_secret_or_service_or_environment_fails(store: CredentialStore) -> None:
    created = store.create("dev", "svc")

    for env, service, secret in [
        ("dev", "svc", Sensitive(b"tbs_wrong-secret-wrong-secret")),
        ("dev", "other", created.secret),
        ("prod", "svc", created.secret),
    ]:
        with pytest.raises(InvalidClient):
            store.authenticate(env, service, secret)


def test_store_keeps_only_a_keyed_hash(store: CredentialStore, engine: Engine) -> None:
    created = store.create("dev", "svc")

    with engine.connect() as connection:
        rows = connection.execute(select(credentials)).all()

    stored = b"".join(str(value).encode() for row in rows for value in row)
    assert created.secret.reveal() not in stored


def test_third_live_credential_is_refused(store: CredentialStore) -> None:
    store.create("dev", "svc")
    store.create("dev", "svc")

    with pytest.raises(Conflict):
        store.create("dev", "svc")


def test_revoked_credential_stops_authenticating_at_once(
    store: CredentialStore,
) -> None:
    created = store.create("dev", "svc")
    store.authenticate("dev", "svc", created.secret)

    store.revoke("dev", "svc", created.info.id)

    with pytest.raises(InvalidClient):
        store.authenticate("dev", "svc", created.secret)
