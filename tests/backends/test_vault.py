"""What the vault backend does beyond the contract, against a real OpenBao server."""

from __future__ import annotations

import contextlib
import inspect
import secrets
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import hvac.exceptions  # type: ignore[import-untyped]
import pytest
import requests
import structlog.testing

from backends.base import ABSENT, Stage
from backends.registry import BackendContext, parse_config
from backends.vault import VaultBackend, VaultConfig, create
from backends.vault_auth import (
    TRANSLATIONS,
    credential_files,
    read_credential,
    translate_error,
)
from service.errors import (
    BackendError,
    BackendMisconfigured,
    BackendUnauthorized,
    BackendUnavailable,
    ConfigurationError,
    Conflict,
    InvalidRequest,
    PayloadTooLarge,
    PreconditionFailed,
    SecretNotFound,
    Throttled,
    VersionDeleted,
    VersionDestroyed,
    VersionDisabled,
)
from service.sensitive import Sensitive
from tests.backends.providers import Providers
from tests.backends.providers.vault import MOUNT, Provider

HOUR = 3600.0


@pytest.fixture
def vault(providers: Providers) -> Provider:
    provider: Provider = providers.get("vault")
    return provider


class MovableClock:
    """A clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.time = time.time()

    def now(self) -> float:
        return self.time

    def advance(self, seconds: float) -> None:
        self.time += seconds


class Recorder:
    """A requests session that remembers every request the real server answered."""

    def __init__(self) -> None:
        self.session = requests.Session()
        self.requests: list[requests.PreparedRequest] = []
        self.session.hooks["response"].append(self._record)

    def _record(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.requests.append(response.request)

    def paths(self) -> list[str]:
        return [urlsplit(request.url or "").path for request in self.requests]


def put(backend: VaultBackend, path: str, value: bytes, **options: Any) -> str:
    return backend.write(path, Sensitive(value), binary=False, **options).version


def kv(backend: VaultBackend, path: str) -> str:
    """The secret's path inside the mount, for arranging through the raw API."""
    return backend._config.path_prefix + path


def unique(name: str) -> str:
    return f"{name}{secrets.token_hex(3)}"


# Configuration (cases C17b, C20, C29).


CONTEXT = BackendContext("prod", None, None, None)  # type: ignore[arg-type]


def vault_options(**overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "type": "vault",
        "url": "https://vault.internal:8200",
        "mount": "kv-prod",
        "auth": {"method": "token", "token_file": "/run/secrets/vault-token"},
    }
    options.update(overrides)
    return options


@pytest.mark.parametrize("mount", ["", "/"], ids=["empty", "slash"])
def test_empty_mount_is_refused_at_config_time(mount: str) -> None:
    """Case C20: an empty mount never reaches the server."""
    with pytest.raises(ConfigurationError, match=r"prod\.vault\.mount"):
        parse_config("prod.vault", vault_options(mount=mount))


def test_config_has_no_default_url_or_credential() -> None:
    """Without url and auth the configuration is refused, naming both keys."""
    with pytest.raises(ConfigurationError) as refused:
        parse_config("prod.vault", {"type": "vault", "mount": "kv"})

    assert "prod.vault.url" in refused.value.message
    assert "prod.vault.auth" in refused.value.message


def test_path_prefix_is_delimiter_terminated() -> None:
    """Case C29: prefix `app` never matches `app-prod`: it is stored as `app/`."""
    config = VaultConfig.model_validate(vault_options(path_prefix="/app"))

    assert config.path_prefix == "app/"


def test_path_prefix_under_data_is_refused_naming_the_mistake() -> None:
    """Case C20: `data/…` in the prefix is KV v2's own URL part, not a folder."""
    with pytest.raises(ConfigurationError, match="starts with 'data/'"):
        parse_config("prod.vault", vault_options(path_prefix="data/app"))


def test_short_approle_config_reads_the_documented_default_files() -> None:
    """SPEC's `auth: {method: approle}` is complete: both files have defaults."""
    config = parse_config("prod.vault", vault_options(auth={"method": "approle"}))

    assert credential_files(config.auth) == {  # type: ignore[attr-defined]
        "role_id_file": Path("/run/secrets/vault-role-id"),
        "secret_id_file": Path("/run/secrets/vault-secret-id"),
    }


def test_inline_role_id_and_role_id_file_together_are_refused() -> None:
    """One source for the role id: two would leave the reader guessing which wins."""
    auth = {"method": "approle", "role_id": "r", "role_id_file": "/run/r"}

    with pytest.raises(ConfigurationError, match="role_id or role_id_file"):
        parse_config("prod.vault", vault_options(auth=auth))


def _broken(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / "vault-secret-id"
    if kind == "empty":
        path.write_text("\n")
    elif kind == "unreadable":
        path.mkdir()
    return path


@pytest.mark.parametrize("kind", ["missing", "empty", "unreadable"])
def test_unusable_secret_id_file_refuses_start_naming_key_and_path(
    tmp_path: Path, kind: str
) -> None:
    """Case C17b: the message names the full key and the file, not a value."""
    role_id_file = tmp_path / "vault-role-id"
    role_id_file.write_text("canary-role-id\n")
    secret_id_file = _broken(tmp_path, kind)
    auth = {"method": "approle", "role_id_file": str(role_id_file),
            "secret_id_file": str(secret_id_file)}  # fmt: skip
    config = parse_config("prod.vault", vault_options(auth=auth))

    with pytest.raises(ConfigurationError) as refused:
        create("vault", config, CONTEXT)  # type: ignore[arg-type]

    message = refused.value.message
    assert "environments.prod.backends.vault.auth.secret_id_file" in message
    assert str(secret_id_file) in message
    assert "canary" not in message


def test_missing_default_file_is_named_as_the_default(tmp_path: Path) -> None:
    """An operator who never set the option learns where the broker looked."""
    secret_id_file = tmp_path / "vault-secret-id"
    secret_id_file.write_text("canary-secret-id\n")
    auth = {"method": "approle", "secret_id_file": str(secret_id_file)}
    config = parse_config("prod.vault", vault_options(auth=auth))

    with pytest.raises(ConfigurationError) as refused:
        create("vault", config, CONTEXT)  # type: ignore[arg-type]

    assert refused.value.message == (
        "environments.prod.backends.vault.auth.role_id_file: cannot read "
        "/run/secrets/vault-role-id (No such file or directory); that is the "
        "default, set role_id_file to change it"
    )


def test_token_file_loses_one_trailing_newline(tmp_path: Path) -> None:
    """Case C17b: `TOKEN\\n` in the file is the token `TOKEN`."""
    token_file = tmp_path / "token"
    token_file.write_text("s.canaryToken123\n")

    assert (
        read_credential("auth.token_file", token_file).reveal() == b"s.canaryToken123"
    )


def test_token_file_with_stray_whitespace_refuses_start(tmp_path: Path) -> None:
    """Case C17b: the error names the key and the file, never the token."""
    token_file = tmp_path / "token"
    token_file.write_text("s.canaryToken123\n\n")
    config = VaultConfig.model_validate(
        vault_options(auth={"method": "token", "token_file": str(token_file)})
    )

    with pytest.raises(ConfigurationError) as refused:
        create("vault", config, CONTEXT)

    assert "auth.token_file" in refused.value.message
    assert "canary" not in refused.value.message


def test_provider_token_file_with_newline_works(vault: Provider) -> None:
    """Case C17b: the session's root token file ends in a newline and still works."""
    assert vault.token_file.read_text().endswith("\n")

    vault.new_backend().check()


# Paths and mounts (case C20).


@pytest.mark.parametrize("path", ["data/app/db", "metadata/app/db"])
def test_path_under_a_kv_subpath_is_refused_naming_it(
    vault: Provider, path: str
) -> None:
    """Case C20: never `…/data/data/…`; the message says what to give instead."""
    backend = vault.new_backend()

    with pytest.raises(InvalidRequest, match="which KV version 2 adds itself"):
        put(backend, path, b"x")


def kv_version_1_mount(vault: Provider) -> str:
    mount = unique("legacy")
    vault.api("POST", f"sys/mounts/{mount}", {"type": "kv", "options": {"version": 1}})
    return mount


def test_kv_version_1_mount_is_refused_on_use_naming_the_key(vault: Provider) -> None:
    """Case C20: the KV version is read from the server, and v1 is refused."""
    backend = vault.new_backend(mount=kv_version_1_mount(vault))

    with pytest.raises(BackendMisconfigured) as refused:
        backend.read("app/db")

    assert refused.value.message.startswith("vault.mount names a KV version 1 mount")
    assert refused.value.status == 503


def test_kv_version_1_mount_stops_start_up_naming_key_and_mount(
    vault: Provider,
) -> None:
    """Case C20: a reachable server's wrong mount is found before any request."""
    mount = kv_version_1_mount(vault)
    config = parse_config("prod.vault", vault.broker_options(mount=mount))
    context = BackendContext("prod", None, None, MovableClock())  # type: ignore[arg-type]

    with pytest.raises(ConfigurationError) as refused:
        create("vault", config, context)  # type: ignore[arg-type]

    message = refused.value.message
    assert message.startswith(
        "environments.prod.backends.vault.mount names a KV version 1 mount"
    )
    assert f"mount {mount!r} is type kv, version 1" in message


def test_a_misspelt_mount_stops_start_up_when_the_token_may_list_mounts(
    vault: Provider,
) -> None:
    """Vault refuses a name that is no mount with a 403; sys/mounts tells."""
    config = parse_config("prod.vault", vault.broker_options(mount="kv-prdo"))
    context = BackendContext("prod", None, None, MovableClock())  # type: ignore[arg-type]

    with pytest.raises(ConfigurationError) as refused:
        create("vault", config, context)  # type: ignore[arg-type]

    assert refused.value.message == (
        "environments.prod.backends.vault.mount names no mount of the vault "
        "server (no mount is named 'kv-prdo')"
    )


def test_a_refused_mount_check_says_to_check_the_mount_name_too(
    vault: Provider, tmp_path: Path
) -> None:
    """A token that may not list mounts cannot tell a misspelt mount from a
    refusal: the 502's detail names both."""
    policy = unique("kv-only")
    rules = f'path "{MOUNT}/*" {{ capabilities = ["read"] }}'
    vault.api("PUT", f"sys/policies/acl/{policy}", {"policy": rules})
    created = vault.api("POST", "auth/token/create", {"policies": [policy]})
    token_file = tmp_path / "token"
    token_file.write_text(created["auth"]["client_token"] + "\n")
    backend = vault.new_backend(
        mount="kv-prdo", auth={"method": "token", "token_file": str(token_file)}
    )

    with pytest.raises(BackendUnauthorized) as refused:
        backend.read("app/db")

    assert refused.value.status == 502
    assert "check that vault.mount names a mount of the server ('kv-prdo')" in (
        refused.value.detail
    )


def test_mount_fixed_on_the_server_serves_without_a_restart(vault: Provider) -> None:
    """Only a passed check is remembered: `kv enable-versioning` is enough."""
    mount = kv_version_1_mount(vault)
    backend = vault.new_backend(mount=mount)
    with pytest.raises(BackendMisconfigured):
        backend.check()

    vault.api("POST", f"sys/mounts/{mount}/tune", {"options": {"version": "2"}})

    wait_until_kv_version_2(vault, mount)
    put(backend, "app/db", b"x")
    assert backend.read("app/db").value.reveal() == b"x"


def wait_until_kv_version_2(vault: Provider, mount: str) -> None:
    """An upgraded mount answers once its upgrade has run (bounded wait)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            vault.api("GET", f"{mount}/config")
            return
        except requests.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"mount {mount!r} never finished its upgrade")


def test_unreachable_server_at_start_up_defers_the_mount_check(
    vault: Provider,
) -> None:
    """A server that is down does not stop start-up; first use checks again."""
    with socket_closed_port() as port:
        options = vault.broker_options(url=f"http://127.0.0.1:{port}", timeout=5)
        config = parse_config("prod.vault", options)
        context = BackendContext("prod", None, None, MovableClock())  # type: ignore[arg-type]

        with structlog.testing.capture_logs() as logs:
            backend = create("vault", config, context)  # type: ignore[arg-type]
        try:
            with pytest.raises(BackendUnavailable):
                backend.check()
        finally:
            backend.close()

    deferred = [e for e in logs if e["event"] == "vault.mount_check_deferred"]
    assert [e["error"] for e in deferred] == ["backend_unavailable"]


def test_nested_mount_gets_exactly_one_url_per_reference(vault: Provider) -> None:
    """Case C20: mount `team/kv` reads `/v1/team/kv/data/…`, lists `/metadata/`."""
    mount = f"{unique('team')}/kv"
    vault.api("POST", f"sys/mounts/{mount}", {"type": "kv", "options": {"version": 2}})
    recorder = Recorder()
    backend = vault.new_backend(mount=mount, session=recorder.session)

    put(backend, "app/db", b"x")
    backend.read("app/db")
    backend.list("app/", page_size=10)

    prefix = backend._config.path_prefix
    kv_paths = {path for path in recorder.paths() if mount in path}
    assert kv_paths == {
        f"/v1/{mount}/data/{prefix}app/db",
        f"/v1/{mount}/metadata/{prefix}app/db",
        f"/v1/{mount}/metadata/{prefix}app",
        f"/v1/sys/internal/ui/mounts/{mount}",
    }


def test_mount_inside_a_mount_is_refused_with_the_right_split(
    vault: Provider,
) -> None:
    """Case C20: mounts match by longest prefix; `team/kv/app` names `team/kv`."""
    mount = f"{unique('team')}/kv"
    vault.api("POST", f"sys/mounts/{mount}", {"type": "kv", "options": {"version": 2}})
    backend = vault.new_backend(mount=f"{mount}/app")

    with pytest.raises(BackendMisconfigured) as refused:
        backend.read("db")

    assert "vault.mount names a folder inside another mount" in refused.value.message
    assert refused.value.detail == (
        f"'{mount}/app' lies inside the mount '{mount}'; set mount: {mount} and "
        "path_prefix: app/"
    )


# Deleted, destroyed, missing (case C21).


@pytest.fixture
def two_versions(vault: Provider) -> VaultBackend:
    backend = vault.new_backend()
    put(backend, "s", b"A")
    put(backend, "s", b"B")
    return backend


def test_soft_deleted_current_is_deleted_with_time_and_live_versions(
    vault: Provider, two_versions: VaultBackend
) -> None:
    """Case C21: reason `deleted`, when, and what is still live; no fallback."""
    vault.api("POST", f"secret/delete/{kv(two_versions, 's')}", {"versions": [2]})

    with pytest.raises(VersionDeleted) as deleted:
        two_versions.read("s")

    assert "was deleted at 20" in deleted.value.message
    assert "live versions: 1" in deleted.value.message


def test_older_version_stays_readable_after_latest_is_deleted(
    vault: Provider, two_versions: VaultBackend
) -> None:
    """Case C21: `version=1` still answers A."""
    vault.api("POST", f"secret/delete/{kv(two_versions, 's')}", {"versions": [2]})

    assert two_versions.read("s", version="1").value.reveal() == b"A"


def test_undeleted_current_reads_again(
    vault: Provider, two_versions: VaultBackend
) -> None:
    """Case C21: after an undelete, current answers B again."""
    vault.api("POST", f"secret/delete/{kv(two_versions, 's')}", {"versions": [2]})
    vault.api("POST", f"secret/undelete/{kv(two_versions, 's')}", {"versions": [2]})

    assert two_versions.read("s").value.reveal() == b"B"


def test_destroyed_version_is_destroyed_not_deleted(
    vault: Provider, two_versions: VaultBackend
) -> None:
    """Case C21: after destroy the reason is `destroyed`, by stage and by id."""
    vault.api("PUT", f"secret/destroy/{kv(two_versions, 's')}", {"versions": [2]})

    with pytest.raises(VersionDestroyed):
        two_versions.read("s")
    with pytest.raises(VersionDestroyed):
        two_versions.read("s", version="2")


def test_never_written_secret_is_not_found(vault: Provider) -> None:
    """Case C21: a secret that never existed is plain not found."""
    with pytest.raises(SecretNotFound, match="does not exist"):
        vault.new_backend().read("t")


def test_disabled_version_is_disabled_and_deleted_in_vault(
    vault: Provider, two_versions: VaultBackend
) -> None:
    """Disabling soft-deletes in KV; the broker still says disabled, not deleted."""
    two_versions.set_enabled("s", "1", False)

    with pytest.raises(VersionDisabled):
        two_versions.read("s", version="1")
    with pytest.raises(requests.HTTPError):
        vault.api("GET", f"secret/data/{kv(two_versions, 's')}?version=1")


def test_create_if_absent_over_a_deleted_latest_names_the_version(
    vault: Provider,
) -> None:
    """Case C05b: a conflict, `exists (latest version deleted), current version 1`."""
    backend = vault.new_backend()
    put(backend, "s", b"one")
    vault.api("POST", f"secret/delete/{kv(backend, 's')}", {"versions": [1]})

    with pytest.raises(Conflict) as refused:
        put(backend, "s", b"two", expected_version=ABSENT)

    assert "exists (latest version deleted), current version 1" in str(refused.value)


# Stages kept in custom_metadata.


def test_stages_survive_a_broker_restart(vault: Provider) -> None:
    """A new backend on the same prefix sees the same current, previous, pending."""
    before = vault.new_backend()
    first = put(before, "s", b"one")
    second = put(before, "s", b"two")
    pending = put(before, "s", b"three", stage=Stage.PENDING)

    after = vault.new_backend(path_prefix=before._config.path_prefix)

    assert after.read("s").version == second
    assert after.read("s", stage=Stage.PREVIOUS).version == first
    assert after.read("s", stage=Stage.PENDING).version == pending


def test_pending_write_whose_labels_were_lost_stays_pending(vault: Provider) -> None:
    """A writer that died before labelling its pending version changes no reads."""
    backend = vault.new_backend()
    current = put(backend, "s", b"one")
    marker = {"stage": "pending", "binary": False}
    vault.api(
        "POST",
        f"secret/data/{kv(backend, 's')}",
        {"options": {"cas": 1}, "data": {"value": "two", "tokenbroker": marker}},
    )

    assert backend.read("s").version == current
    assert backend.read("s", stage=Stage.PENDING).value.reveal() == b"two"


def test_version_written_outside_the_broker_becomes_current(vault: Provider) -> None:
    """An operator's `bao kv put` is a new current version; the old one previous."""
    backend = vault.new_backend()
    first = put(backend, "s", b"one")
    vault.api("POST", f"secret/data/{kv(backend, 's')}", {"data": {"value": "ops"}})

    assert backend.read("s").value.reveal() == b"ops"
    assert backend.read("s", stage=Stage.PREVIOUS).version == first


def test_operators_custom_metadata_is_kept(vault: Provider) -> None:
    """The broker rewrites only its own `tokenbroker-` keys."""
    backend = vault.new_backend()
    put(backend, "s", b"one")
    path = f"secret/metadata/{kv(backend, 's')}"
    existing = vault.api("GET", path)["data"]["custom_metadata"]
    vault.api("POST", path, {"custom_metadata": {**existing, "owner": "team-a"}})

    put(backend, "s", b"two")

    assert vault.api("GET", path)["data"]["custom_metadata"]["owner"] == "team-a"


def test_oversized_value_is_refused_before_writing(vault: Provider) -> None:
    backend = vault.new_backend(max_value_bytes=8)

    with pytest.raises(PayloadTooLarge):
        put(backend, "s", b"123456789")
    with pytest.raises(SecretNotFound):
        backend.read("s")


def test_listing_walks_nested_folders_in_path_order_across_pages(
    vault: Provider,
) -> None:
    """Folders are walked depth first in code point order; pages never repeat."""
    backend = vault.new_backend()
    names = ["a/b/c", "a/b/d/e", "a/b0", "a-b", "a0", "b"]
    for name in names:
        put(backend, name, b"x")

    seen: list[str] = []
    token = None
    for _page in range(20):
        page = backend.list("a", page_size=2, page_token=token)
        seen.extend(item.path for item in page.items)
        token = page.next_token
        if token is None:
            break

    assert seen == ["a-b", "a/b/c", "a/b/d/e", "a/b0", "a0"]


def test_logs_and_errors_never_show_the_token(vault: Provider) -> None:
    """Case C17: the token appears in no log event, error or repr."""
    backend = vault.new_backend()

    with structlog.testing.capture_logs() as logs:
        put(backend, "s", b"x")
        with pytest.raises(SecretNotFound) as missing:
            backend.read("never")

    shown = repr(logs) + str(missing.value) + repr(backend) + repr(backend._vault)
    assert logs
    assert vault.root_token not in shown


# Namespaces (case C29).


@pytest.fixture
def namespaces(vault: Provider) -> tuple[str, str]:
    names = (unique("dev"), unique("prod"))
    for name in names:
        vault.api("POST", f"sys/namespaces/{name}", {})
        kv2 = {"type": "kv", "options": {"version": 2}}
        vault.api("POST", "sys/mounts/secret", kv2, namespace=name)
    return names


def test_namespaces_keep_reads_and_listings_apart(
    vault: Provider, namespaces: tuple[str, str]
) -> None:
    """Case C29: `dev` sees only dev's `db`, and nothing lands in the root."""
    dev_name, prod_name = namespaces
    dev = vault.new_backend(namespace=dev_name, path_prefix="")
    prod = vault.new_backend(namespace=prod_name, path_prefix="")
    put(dev, "db", b"dev-value")
    put(prod, "db", b"prod-value")

    listed = dev.list("", page_size=10).items

    assert [(item.path, item.current_version) for item in listed] == [("db", "1")]
    assert dev.read("db").value.reveal() == b"dev-value"
    with pytest.raises(requests.HTTPError):
        vault.api("GET", f"secret/metadata/{kv(dev, 'db')}")


def test_every_request_carries_the_namespace(
    vault: Provider, namespaces: tuple[str, str]
) -> None:
    """Case C29: list, metadata, delete and login calls all name the namespace."""
    recorder = Recorder()
    dev = vault.new_backend(namespace=namespaces[0], session=recorder.session)

    first = put(dev, "db", b"one")
    put(dev, "db", b"two", stage=Stage.PENDING)
    dev.read("db")
    dev.versions("db")
    dev.list("", page_size=10)
    dev.set_enabled("db", first, False)
    dev.set_enabled("db", first, True)
    dev.check()

    sent = {request.headers.get("X-Vault-Namespace") for request in recorder.requests}
    assert sent == {namespaces[0]}
    assert len(recorder.requests) >= 10


# The broker's own token (case C06a).


@pytest.fixture
def approle(vault: Provider, tmp_path: Path) -> Iterator[Any]:
    auth_methods = vault.api("GET", "sys/auth")["data"]
    if "approle/" not in auth_methods:
        vault.api("POST", "sys/auth/approle", {"type": "approle"})
    # What the broker needs and no more: no sudo, no sys/mounts.
    policy = 'path "secret/*" { capabilities = ["create", "read", "update", "list"] }'
    vault.api("PUT", "sys/policies/acl/broker", {"policy": policy})

    def make(ttl: str, max_ttl: str, *, role_id_file: bool = False) -> dict[str, Any]:
        role = unique("broker")
        vault.api(
            "POST",
            f"auth/approle/role/{role}",
            {"token_ttl": ttl, "token_max_ttl": max_ttl, "token_policies": ["broker"]},
        )
        role_id = vault.api("GET", f"auth/approle/role/{role}/role-id")["data"]
        secret = vault.api("POST", f"auth/approle/role/{role}/secret-id")["data"]
        secret_id_file = tmp_path / f"{role}-secret-id"
        secret_id_file.write_text(secret["secret_id"] + "\n")
        auth = {"method": "approle", "secret_id_file": str(secret_id_file)}
        if not role_id_file:
            return auth | {"role_id": role_id["role_id"]}
        role_id_path = tmp_path / f"{role}-role-id"
        role_id_path.write_text(role_id["role_id"] + "\n")
        return auth | {"role_id_file": str(role_id_path)}

    yield make


def test_approle_logs_in_with_both_ids_from_files(
    vault: Provider, approle: Any
) -> None:
    """Case C17b: role id and secret id files end in a newline and still work."""
    backend = vault.new_backend(auth=approle("1h", "1h", role_id_file=True))

    with structlog.testing.capture_logs() as logs:
        backend.check()

    assert events(logs) == ["vault.login"]


def events(logs: Sequence[Mapping[str, Any]]) -> list[str]:
    return [str(entry["event"]) for entry in logs if entry["event"].startswith("vault")]


def let_server_age(vault: Provider, logs: Sequence[Mapping[str, Any]]) -> None:
    """Wait (bounded) until the server counts the last login's TTL down.

    The server keeps real time, so its max TTL only caps a renewal once at
    least a second has passed since the login; the broker's clock is moved by
    the test.
    """
    accessor = next(e for e in reversed(logs) if e["event"] == "vault.login")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        data = vault.api(
            "POST", "auth/token/lookup-accessor", {"accessor": accessor["accessor"]}
        )["data"]
        if data["ttl"] <= data["creation_ttl"] - 2:
            return
        time.sleep(0.2)
    raise AssertionError("the server never counted the token's TTL down")


def test_renewal_at_two_thirds_keeps_the_token(vault: Provider, approle: Any) -> None:
    """Case C06a: an uncapped renewal at 2/3 of the lifetime keeps the same token."""
    clock = MovableClock()
    backend = vault.new_backend(auth=approle("1h", "3h"), clock=clock)

    with structlog.testing.capture_logs() as logs:
        backend.check()
        clock.advance(0.67 * HOUR)
        backend.check()

    assert events(logs) == ["vault.login", "vault.token_renewed"]
    assert logs[0]["accessor"] == logs[1]["accessor"]


def test_capped_renewal_logs_in_afresh_and_never_says_renewed(
    vault: Provider, approle: Any
) -> None:
    """Case C06a: a grant below the requested TTL means a new login, not "renewed"."""
    clock = MovableClock()
    backend = vault.new_backend(auth=approle("1h", "1h"), clock=clock)

    with structlog.testing.capture_logs() as logs:
        backend.check()
        let_server_age(vault, logs)
        clock.advance(0.67 * HOUR)
        backend.check()

    assert events(logs) == ["vault.login", "vault.token_renewal_capped", "vault.login"]
    assert logs[0]["accessor"] != logs[-1]["accessor"]


def test_token_never_expires_over_four_hours_of_capped_renewals(
    vault: Provider, approle: Any
) -> None:
    """Case C06a: driven for 4 h in 10-minute steps, the broker never lapses."""
    clock = MovableClock()
    backend = vault.new_backend(auth=approle("1h", "1h"), clock=clock)

    with structlog.testing.capture_logs() as logs:
        for _step in range(24):
            backend.check()
            if logs[-1]["event"] == "vault.login":
                let_server_age(vault, logs)
            clock.advance(HOUR / 6)

    seen = events(logs)
    assert "vault.token_expired" not in seen
    assert "vault.token_renewed" not in seen
    assert seen.count("vault.login") == 6


def test_capped_token_file_is_reloaded_for_its_replacement(
    vault: Provider, tmp_path: Path
) -> None:
    """Case C06a with a token file: a capped renewal picks up the agent's new token."""
    create_token = {"ttl": "1h", "explicit_max_ttl": "1h", "policies": ["default"]}
    token_file = tmp_path / "token"
    first = vault.api("POST", "auth/token/create", create_token)["auth"]
    token_file.write_text(first["client_token"] + "\n")
    clock = MovableClock()
    backend = vault.new_backend(
        auth={"method": "token", "token_file": str(token_file)}, clock=clock
    )

    with structlog.testing.capture_logs() as logs:
        backend._vault.request("GET", "auth/token/lookup-self")
        let_server_age(vault, logs)
        second = vault.api("POST", "auth/token/create", create_token)["auth"]
        token_file.write_text(second["client_token"] + "\n")
        clock.advance(0.67 * HOUR)
        backend._vault.request("GET", "auth/token/lookup-self")

    assert events(logs) == ["vault.login", "vault.token_renewal_capped", "vault.login"]
    assert logs[-1]["accessor"] == second["accessor"]


def test_revoked_token_is_replaced_by_a_fresh_login(
    vault: Provider, approle: Any
) -> None:
    """A token revoked behind the broker's back costs one login, not an error."""
    backend = vault.new_backend(auth=approle("1h", "3h"))
    with structlog.testing.capture_logs() as logs:
        put(backend, "s", b"one")
        accessor = logs[0]["accessor"]
        vault.api("POST", "auth/token/revoke-accessor", {"accessor": accessor})

        assert backend.read("s").value.reveal() == b"one"

    assert events(logs) == ["vault.login", "vault.login"]


# Error translation (C17d and the one boundary).

HVAC_ERRORS = sorted(
    (
        cls
        for _, cls in inspect.getmembers(hvac.exceptions, inspect.isclass)
        if issubclass(cls, Exception) and cls.__module__ == hvac.exceptions.__name__
    ),
    key=lambda cls: cls.__name__,
)


def test_every_hvac_exception_has_a_translation() -> None:
    """A new hvac error class fails here until it is mapped on purpose."""
    unmapped = [cls.__name__ for cls in HVAC_ERRORS if cls not in TRANSLATIONS]

    assert unmapped == []


@pytest.mark.parametrize("cls", HVAC_ERRORS, ids=[cls.__name__ for cls in HVAC_ERRORS])
def test_hvac_exception_becomes_its_mapped_broker_error(
    cls: type[hvac.exceptions.VaultError],
) -> None:
    error = cls("boom", method="GET", url="http://vault:8200/v1/secret/data/x")

    assert type(translate_error(error)) is TRANSLATIONS[cls]


@pytest.mark.parametrize(
    "error",
    [
        requests.ConnectionError("refused"),
        requests.ConnectTimeout("slow"),
        requests.ReadTimeout("slower"),
    ],
    ids=["connection-error", "connect-timeout", "read-timeout"],
)
def test_network_failures_are_unavailable(error: Exception) -> None:
    assert isinstance(translate_error(error), BackendUnavailable)


def test_check_and_set_refusal_is_precondition_failed() -> None:
    error = hvac.exceptions.InvalidRequest(
        errors=["check-and-set parameter did not match the current version"]
    )

    assert isinstance(translate_error(error), PreconditionFailed)


def test_rate_limited_request_tells_the_caller_when_to_retry() -> None:
    """Case C27: Vault's 429 becomes Throttled with a Retry-After for the API."""
    translated = translate_error(hvac.exceptions.RateLimitExceeded(errors=["quota"]))

    assert isinstance(translated, Throttled)
    assert translated.retry_after is not None and translated.retry_after > 0


def test_deleted_version_body_is_version_deleted_not_missing() -> None:
    """Case C21: KV's 404 with deletion metadata is not an ambiguous not-found."""
    body = {"data": {"data": None, "metadata": {"deletion_time": "2026-01-01T00:00Z"}}}

    assert isinstance(
        translate_error(hvac.exceptions.InvalidPath(json=body)), VersionDeleted
    )


def test_error_text_drops_query_strings_and_tokens() -> None:
    """Case C17d: a URL with a token in its query is cut before anyone sees it."""
    error = hvac.exceptions.Forbidden(
        errors=["denied at https://v/x?token=CANARY1 for hvs.CANARY2abcdefghijklmnop"],
        method="GET",
        url="http://vault:8200/v1/secret/data/x?token=CANARY3",
    )

    translated = translate_error(error)

    assert "CANARY" not in f"{translated.message} {translated.detail}"
    assert "/v1/secret/data/x" in str(translated.detail)


def test_error_message_leaves_the_address_and_vaults_words_to_the_detail() -> None:
    """The message may reach a caller: no host, no path inside the store."""
    error = hvac.exceptions.InvalidRequest(
        errors=['no handler for route "kv-prod/data/team/db"'],
        method="POST",
        url="https://vault.internal:8200/v1/kv-prod/data/team/db",
    )

    translated = translate_error(error)

    assert translated.message == "vault answered InvalidRequest"
    assert translated.detail == (
        'vault answered InvalidRequest: no handler for route "kv-prod/data/team/db"'
        " on POST https://vault.internal:8200/v1/kv-prod/data/team/db"
    )


def test_unreachable_vault_names_no_address_but_in_the_detail() -> None:
    """A connection failure's message is the same whatever the server's address."""
    request = requests.Request("GET", "https://vault.internal:8200/v1/x").prepare()

    translated = translate_error(requests.ConnectionError("refused", request=request))

    assert translated.message == "vault cannot be reached (ConnectionError)"
    assert "vault.internal" in str(translated.detail)


def test_unreachable_vault_is_unavailable(vault: Provider) -> None:
    with socket_closed_port() as port:
        backend = vault.new_backend(url=f"http://127.0.0.1:{port}", timeout=5)

        with pytest.raises(BackendUnavailable) as unavailable:
            backend.check()

    assert vault.root_token not in str(unavailable.value)
    assert isinstance(unavailable.value, BackendError)


@contextlib.contextmanager
def socket_closed_port() -> Iterator[int]:
    """A loopback port nothing listens on, for as long as the block runs."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        port: int = bound.getsockname()[1]
        yield port


def test_registry_entry_point_builds_a_working_backend(vault: Provider) -> None:
    """The registry entry point builds a working backend from parsed config."""
    config = parse_config(
        "dev.vault",
        {
            "type": "vault",
            "url": vault.url,
            "mount": "secret",
            "path_prefix": vault.fresh_prefix(),
            "auth": {"method": "token", "token_file": str(vault.token_file)},
        },
    )
    context = BackendContext("dev", None, None, MovableClock())  # type: ignore[arg-type]

    backend = create("vault", config, context)  # type: ignore[arg-type]
    try:
        backend.check()
    finally:
        backend.close()
