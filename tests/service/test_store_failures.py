"""What callers and operators see when a secret store fails or refuses: a
misconfigured Vault mount, a store that cannot be reached, a version that is not
there. Callers get a clear status and code, never a store's address or the path
a secret has inside it; `/readyz` and the log tell the operator the rest.

Each broker serves `dev` (local) beside `prod` (a real OpenBao server), so every
test also shows that one broken store leaves the other environment serving.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog.testing

from tests.backends.providers import Providers
from tests.backends.providers.vault import Provider
from tests.backends.test_vault import socket_closed_port
from tests.service.conftest import FakeClock
from tests.service.harness import LocalBroker, local_broker

SECRET = "payments/stripe-key"


@pytest.fixture
def vault(providers: Providers) -> Provider:
    provider: Provider = providers.get("vault")
    return provider


@contextmanager
def broker_with_vault(tmp_path: Path, **vault: Any) -> Iterator[LocalBroker]:
    """A broker whose `prod` keeps its secrets in the vault backend `vault`."""
    environments = {
        "dev": {"default_backend": "local", "backends": {"local": {"type": "local"}}},
        "prod": {"default_backend": "vault", "backends": {"vault": vault}},
    }
    with local_broker(tmp_path, FakeClock(), environments) as broker:
        yield broker


def get(broker: LocalBroker, env: str, path: str) -> httpx.Response:
    return broker.call(
        "GET", f"/v1/{env}{path}", headers=broker.bearer(broker.admin_token(env))
    )


def kv_version_1_mount(vault: Provider) -> str:
    mount = f"legacy{secrets.token_hex(3)}"
    vault.api("POST", f"sys/mounts/{mount}", {"type": "kv", "options": {"version": 1}})
    return mount


def test_kv_version_1_mount_found_on_first_use_is_503_backend_misconfigured(
    vault: Provider, tmp_path: Path
) -> None:
    """Case C20: no 500; the answer names the configuration key, not the mount."""
    mount = kv_version_1_mount(vault)
    # The broker's token is refused at start-up, so the mount check waits for
    # first use; by then the right token is in place.
    token_file = tmp_path / "vault-token"
    token_file.write_text("s.refusedAtStartUp0123456789\n")
    auth = {"method": "token", "token_file": str(token_file)}
    with broker_with_vault(
        tmp_path, **vault.broker_options(mount=mount, auth=auth)
    ) as broker:
        token_file.write_text(vault.root_token + "\n")

        with structlog.testing.capture_logs() as logs:
            answer = get(broker, "prod", f"/secrets/{SECRET}")

    body = answer.json()
    assert (answer.status_code, body["error"]) == (503, "backend_misconfigured")
    assert body["error_description"].startswith(
        "environments.prod.backends.vault.mount names a KV version 1 mount"
    )
    assert mount not in answer.text
    refused = [e for e in logs if e["event"] == "vault.mount_refused"]
    assert [e["mount"] for e in refused] == [mount]


def test_readiness_says_which_backend_is_misconfigured(
    vault: Provider, tmp_path: Path
) -> None:
    """`/readyz` reports the code, and the other environment stays ready."""
    token_file = tmp_path / "vault-token"
    token_file.write_text("s.refusedAtStartUp0123456789\n")
    auth = {"method": "token", "token_file": str(token_file)}
    options = vault.broker_options(mount=kv_version_1_mount(vault), auth=auth)
    with broker_with_vault(tmp_path, **options) as broker:
        token_file.write_text(vault.root_token + "\n")

        answer = broker.call("GET", "/readyz")
        served = get(broker, "dev", "/secrets?prefix=")

    checks = answer.json()["checks"]
    assert checks["prod/vault"] == "unavailable: backend_misconfigured"
    assert checks["dev/local"] == "ok"
    assert served.status_code == 200


@pytest.fixture
def unreachable(vault: Provider, tmp_path: Path) -> Iterator[tuple[LocalBroker, int]]:
    """A broker whose prod vault listens nowhere, started all the same."""
    with socket_closed_port() as port:
        options = vault.broker_options(url=f"http://127.0.0.1:{port}", timeout=5)
        with broker_with_vault(tmp_path, **options) as broker:
            yield broker, port


@pytest.mark.parametrize(
    "path",
    [f"/secrets/{SECRET}", f"/secrets/{SECRET}/consumers", "/secrets?prefix="],
    ids=["read", "consumers", "list"],
)
def test_unreachable_store_is_503_with_retry_after_and_no_address(
    unreachable: tuple[LocalBroker, int], path: str
) -> None:
    """The caller learns when to retry, and never where the store lives."""
    broker, port = unreachable

    answer = get(broker, "prod", path)

    assert (answer.status_code, answer.json()["error"]) == (503, "backend_unavailable")
    assert answer.headers["Retry-After"] == "5"
    assert "127.0.0.1" not in answer.text
    assert str(port) not in answer.text


def test_rotation_record_of_an_unreachable_store_shows_no_address(
    unreachable: tuple[LocalBroker, int],
) -> None:
    """A failed step's error is kept in the record the caller reads back."""
    broker, port = unreachable

    answer = broker.call(
        "POST",
        f"/v1/prod/secrets/{SECRET}/rotate",
        headers=broker.bearer(broker.admin_token("prod")),
    )

    assert answer.json()["error"] == "vault cannot be reached (ConnectionError)"
    assert str(port) not in answer.text


def test_unreachable_store_leaves_the_other_environment_serving(
    unreachable: tuple[LocalBroker, int],
) -> None:
    """A store down at start-up is reported by `/readyz`, not fatal."""
    broker, _port = unreachable

    checks = broker.call("GET", "/readyz").json()["checks"]
    served = get(broker, "dev", "/secrets?prefix=")

    assert checks["prod/vault"] == "unavailable: backend_unavailable"
    assert (checks["dev/local"], served.status_code) == ("ok", 200)


DECLARED = """\
secrets:
  payments/stripe-key: {path: internal/stripe-live}
"""


@pytest.mark.parametrize(
    ("method", "options", "extra", "status"),
    [
        ("GET", {"params": {"version": "9"}}, {}, 404),
        ("PUT", {"json": {"value": "x"}}, {"If-Match": '"9"'}, 412),
    ],
    ids=["missing-version", "stale-if-match"],
)
def test_store_refusal_names_the_secret_not_its_path_inside_the_store(
    tmp_path: Path,
    method: str,
    options: dict[str, Any],
    extra: dict[str, str],
    status: int,
) -> None:
    """Where a policy puts a secret is an admin's business, not the caller's."""
    with local_broker(tmp_path, FakeClock()) as broker:
        assert broker.put_policy("dev", "placed", DECLARED).status_code == 200
        headers = broker.bearer(broker.admin_token("dev"))
        url = f"/v1/dev/secrets/{SECRET}"
        assert broker.call("PUT", url, headers=headers, json={"value": "v"}).is_success

        answer = broker.call(method, url, headers={**headers, **extra}, **options)

    assert answer.status_code == status
    assert SECRET in answer.json()["error_description"]
    assert "internal/stripe-live" not in answer.text
