"""What only the azure backend does, over the fake Key Vault with faults injected.

The shared behaviours run in `test_contract.py`; these pin Key Vault's own
troubles: paging (C18), soft delete (C19), its size limit (C26), throttling
(C27), name escaping, and the translation of every SDK error.
"""

from __future__ import annotations

import inspect
import itertools
import os
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import azure.core.exceptions
import azure.identity
import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ODataV4Format

from backends.azure import AzureBackend, connect
from backends.azure_errors import TRANSLATIONS, ForeignHost, translate
from backends.azure_names import secret_name, secret_path
from backends.azure_versions import BINARY, TEXT
from backends.base import ABSENT, Stage
from backends.registry import parse_config
from service.errors import (
    BackendError,
    BackendUnauthorized,
    BackendUnavailable,
    ConfigurationError,
    Conflict,
    InvalidRequest,
    PayloadTooLarge,
    PreconditionFailed,
    SecretNotFound,
    Throttled,
    TokenBrokerError,
    VersionDisabled,
)
from service.sensitive import Sensitive
from tests.backends.azure_fake import FakeKeyVault, Vault
from tests.backends.providers.azure import backend_config

MakeBackend = Callable[..., AzureBackend]


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeKeyVault]:
    server = FakeKeyVault(tmp_path_factory.mktemp("azure")).start()
    yield server
    server.stop()


@pytest.fixture
def vault(fake: FakeKeyVault) -> Vault:
    """The fake's vault, emptied and with every fault knob back at rest."""
    fake.vault.reset()
    return fake.vault


@pytest.fixture
def make_backend(fake: FakeKeyVault, vault: Vault) -> Iterator[MakeBackend]:
    made: list[AzureBackend] = []

    def make(**options: object) -> AzureBackend:
        backend = connect("azure", backend_config(fake, **options))
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


@pytest.fixture
def kv(make_backend: MakeBackend) -> AzureBackend:
    return make_backend()


def put(backend: AzureBackend, path: str, value: bytes, **options: object) -> str:
    info = backend.write(path, Sensitive(value), binary=False, **options)  # type: ignore[arg-type]
    return info.version


def seed(vault: Vault, paths: list[str]) -> None:
    """Secrets written straight into the vault, as another tool would."""
    for path in paths:
        vault.set(
            secret_name(path),
            f"value of {path}",
            content_type=None,
            tags={},
            enabled=True,
        )


def requests_to(vault: Vault, method: str, path: str) -> list[int]:
    """Statuses of the authorised requests the fake saw for one URL path."""
    return [
        seen.status
        for seen in vault.seen
        if seen.method == method and seen.path == path and seen.sent_authorization
    ]


# Name escaping ----------------------------------------------------------------

TRICKY_PATHS = [
    "payments/stripe-key",
    "payments/stripe_key",
    "payments/stripe.key",
    "payments/stripe--key",
    "payments//stripe",
    "/leading",
    "trailing/",
    "-",
    "--",
    "-h",
    "-2d",
    "a",
    "A",
    "Payments/Stripe",
    "x-41",
    "100%",
    "with space",
    "tab\tand\x00nul",
    "pässwörd-é",
    "🔐/密",
]


@pytest.mark.parametrize("path", TRICKY_PATHS)
def test_escaped_name_uses_only_key_vault_characters(path: str) -> None:
    name = secret_name(path)

    assert name and all(
        char.isascii() and (char.isalnum() or char == "-") for char in name
    )
    assert name == name.lower()


@pytest.mark.parametrize("path", TRICKY_PATHS)
def test_escaped_name_round_trips_to_the_path(path: str) -> None:
    assert secret_path(secret_name(path)) == path


def test_no_two_paths_share_a_name_even_ignoring_case() -> None:
    """Key Vault names are case-insensitive; escaping must not rely on case."""
    names = {secret_name(path).lower() for path in TRICKY_PATHS}

    assert len(names) == len(TRICKY_PATHS)


def test_escaping_keeps_path_prefixes_as_name_prefixes() -> None:
    for head, tail in [("app/", "db"), ("app", "-prod/db"), ("a.", "_b")]:
        assert secret_name(head + tail) == secret_name(head) + secret_name(tail)


@pytest.mark.parametrize(
    "name",
    ["Payments", "-61", "-2f", "-", "a-", "-zz", "-c3", "-c3a", "-ff", ""],
    ids=[
        "uppercase",
        "non-canonical-letter",
        "non-canonical-slash",
        "lone-dash",
        "trailing-dash",
        "unknown-escape",
        "truncated-utf8",
        "short-hex",
        "invalid-utf8",
        "empty",
    ],
)
def test_names_the_broker_never_writes_are_not_decoded(name: str) -> None:
    assert secret_path(name) is None


def test_path_too_long_once_escaped_is_refused_before_any_request(
    kv: AzureBackend, vault: Vault
) -> None:
    with pytest.raises(InvalidRequest, match="127"):
        put(kv, "Ä" * 30, b"x")
    assert vault.seen == []


def test_original_path_is_kept_in_a_tag(kv: AzureBackend, vault: Vault) -> None:
    put(kv, "payments/stripe-key", b"x")

    (version,) = vault.versions("payments--stripe-hkey")
    assert version.tags["tokenbroker-path"] == "payments/stripe-key"


def test_name_prefix_is_part_of_the_escaped_name(
    make_backend: MakeBackend, vault: Vault
) -> None:
    backend = make_backend(name_prefix="team-a/")
    put(backend, "db", b"x")

    assert [secret.name for secret in vault.secrets()] == ["team-ha--db"]
    assert [item.path for item in backend.list("", page_size=10).items] == ["db"]


# Values -----------------------------------------------------------------------


def test_text_is_stored_as_is_and_binary_as_marked_base64(
    kv: AzureBackend, vault: Vault
) -> None:
    kv.write("text", Sensitive(b"  QUJD\n"), binary=False)
    kv.write("bytes", Sensitive(b"QUJD"), binary=True)

    text, binary = vault.versions("text")[0], vault.versions("bytes")[0]
    assert (text.value, text.content_type) == ("  QUJD\n", TEXT)
    assert (binary.value, binary.content_type) == ("UVVKRA==", BINARY)


def test_text_that_is_not_utf8_is_refused(kv: AzureBackend) -> None:
    with pytest.raises(InvalidRequest, match="binary"):
        kv.write("text", Sensitive(b"\xff\xfe"), binary=False)


def test_value_over_the_limit_is_refused_before_any_request(
    kv: AzureBackend, vault: Vault
) -> None:
    """Case C26: 26 KiB to Azure is refused with 413 naming limit and size."""
    with pytest.raises(PayloadTooLarge) as refused:
        put(kv, "big", b"x" * 26 * 1024)

    assert refused.value.status == 413
    assert "26624 bytes" in refused.value.message
    assert "25600 bytes" in refused.value.message
    assert vault.seen == []
    assert vault.secrets() == []


def test_binary_value_too_large_once_base64_encoded_is_refused(
    kv: AzureBackend, vault: Vault
) -> None:
    with pytest.raises(PayloadTooLarge, match="base64"):
        kv.write("big", Sensitive(os.urandom(20_000)), binary=True)
    assert vault.secrets() == []


def test_value_at_the_limit_round_trips(kv: AzureBackend) -> None:
    value = "é".encode() * (25 * 1024 // 2)
    put(kv, "full", value)

    assert kv.read("full").value.reveal() == value


# Stages -----------------------------------------------------------------------


def test_pending_version_is_azure_latest_but_not_current(
    kv: AzureBackend, vault: Vault
) -> None:
    current = put(kv, "app/db", b"one")
    pending = put(kv, "app/db", b"two", stage=Stage.PENDING)

    assert vault.versions("app--db")[-1].id == pending
    assert kv.read("app/db").version == current
    assert kv.read("app/db").info.stages == frozenset({Stage.CURRENT})


def test_stages_survive_a_new_backend_instance(make_backend: MakeBackend) -> None:
    """Pointers live in the vault, not in the process."""
    first = make_backend()
    one = put(first, "app/db", b"one")
    two = put(first, "app/db", b"two")
    pending = put(first, "app/db", b"three", stage=Stage.PENDING)

    again = make_backend()

    assert again.read("app/db").version == two
    assert again.read("app/db", stage=Stage.PREVIOUS).version == one
    assert again.read("app/db", stage=Stage.PENDING).version == pending


def test_disabled_current_version_reads_as_disabled_and_stages_still_resolve(
    kv: AzureBackend,
) -> None:
    """Key Vault refuses to get a disabled head; its tags come from the listing."""
    one = put(kv, "app/db", b"one")
    two = put(kv, "app/db", b"two")
    kv.set_enabled("app/db", two, False)

    with pytest.raises(VersionDisabled):
        kv.read("app/db")
    assert kv.read("app/db", stage=Stage.PREVIOUS).version == one

    three = put(kv, "app/db", b"three", expected_version=two)
    assert kv.read("app/db").version == three
    assert [info.enabled for info in kv.versions("app/db")] == [True, False, True]


def test_secret_written_by_another_tool_reads_its_newest_version(
    kv: AzureBackend, vault: Vault
) -> None:
    seed(vault, ["legacy"])

    assert kv.read("legacy").value.reveal() == b"value of legacy"
    put(kv, "legacy", b"new")
    assert kv.read("legacy", stage=Stage.PREVIOUS).value.reveal() == b"value of legacy"


def test_writer_racing_from_another_process_is_detected_and_undone(
    kv: AzureBackend, vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version created from the same base after ours makes ours lose, visibly."""
    base = put(kv, "app/db", b"base")
    original = kv._client.set_secret

    def racing(name: str, value: str, **options: Any) -> Any:
        written = original(name, value, **options)
        vault.set(
            name, "theirs", content_type=TEXT, tags=dict(options["tags"]), enabled=True
        )
        return written

    monkeypatch.setattr(kv._client, "set_secret", racing)

    with pytest.raises(Conflict, match="concurrently"):
        put(kv, "app/db", b"mine", expected_version=base)
    assert [version.enabled for version in vault.versions("app--db")] == [
        True,
        False,
        True,
    ]


# Listing (C18) ----------------------------------------------------------------


def test_listing_follows_every_page_of_the_vault(
    kv: AzureBackend, vault: Vault
) -> None:
    """Case C18(b): 250 secrets at 25 a page; the one at position 240 is found."""
    paths = [f"s{index:03d}" for index in range(250)]
    seed(vault, paths)

    page = kv.list("", page_size=1000)

    assert [item.path for item in page.items] == paths
    assert page.next_token is None
    assert len(requests_to(vault, "GET", "/secrets")) >= 10


def test_get_or_create_finds_a_secret_deep_in_the_vault(
    kv: AzureBackend, vault: Vault
) -> None:
    """Case C18(b): nothing is created for a secret that exists on page 10."""
    seed(vault, [f"s{index:03d}" for index in range(250)])

    with pytest.raises(PreconditionFailed):
        put(kv, "s240", b"regenerated", expected_version=ABSENT)

    assert kv.read("s240").value.reveal() == b"value of s240"
    assert len(vault.versions(secret_name("s240"))) == 1
    assert requests_to(vault, "PUT", "/secrets/s240") == []


def test_empty_first_page_with_a_next_link_is_not_the_end(
    kv: AzureBackend, vault: Vault
) -> None:
    """Case C18(c)."""
    seed(vault, ["a", "b", "c"])
    vault.faults.empty_first_page = True

    page = kv.list("", page_size=10)

    assert [item.path for item in page.items] == ["a", "b", "c"]


def test_next_link_to_another_host_fails_and_the_credential_stays_home(
    kv: AzureBackend, fake: FakeKeyVault, vault: Vault
) -> None:
    """Case C18(d): the page link names localhost, the vault is 127.0.0.1."""
    seed(vault, ["a", "b", "c", "d", "e"])
    vault.faults.page_size = 2
    vault.faults.next_link_host = f"localhost:{fake.port}"

    with pytest.raises(BackendError, match="another host"):
        kv.list("", page_size=10)

    assert vault.seen
    assert all(seen.host == f"127.0.0.1:{fake.port}" for seen in vault.seen)


def test_the_sdk_itself_cannot_send_the_credential_to_another_host(
    kv: AzureBackend, fake: FakeKeyVault, vault: Vault
) -> None:
    """Case C18(d): the pipeline refuses a foreign host even when the SDK pages."""
    seed(vault, ["a", "b", "c"])
    vault.faults.page_size = 2
    vault.faults.next_link_host = f"localhost:{fake.port}"

    with pytest.raises(ForeignHost):
        list(kv._client.list_properties_of_secrets())

    assert all(seen.host == f"127.0.0.1:{fake.port}" for seen in vault.seen)


def test_repeated_page_link_fails_instead_of_spinning(
    kv: AzureBackend, vault: Vault
) -> None:
    """Case C18(e)."""
    seed(vault, [f"s{index}" for index in range(7)])
    vault.faults.page_size = 2
    vault.faults.repeat_skiptoken = True

    with pytest.raises(BackendError, match="repeated"):
        kv.list("", page_size=10)
    assert len(requests_to(vault, "GET", "/secrets")) == 2


def test_listing_skips_names_the_broker_did_not_escape(
    kv: AzureBackend, vault: Vault
) -> None:
    seed(vault, ["plain"])
    for name in ["Uppercase", "odd-zz", "-61"]:
        vault.set(name, "x", content_type=None, tags={}, enabled=True)

    assert [item.path for item in kv.list("", page_size=10).items] == ["plain"]


# Soft delete (C19) ------------------------------------------------------------


def write_and_delete(backend: AzureBackend, vault: Vault) -> str:
    first = put(backend, "db-password", b"v1")
    vault.delete(secret_name("db-password"))
    vault.seen.clear()
    return first


def test_soft_deleted_name_fails_by_default_and_changes_nothing(
    kv: AzureBackend, vault: Vault
) -> None:
    """Case C19(a)."""
    write_and_delete(kv, vault)

    with pytest.raises(
        Conflict, match="held by a soft-deleted secret; recover or purge"
    ):
        put(kv, "db-password", b"NEW")

    assert vault.deleted(secret_name("db-password"))
    assert vault.secrets() == []
    assert requests_to(vault, "PUT", "/secrets/db-hpassword") == [409]


def test_recover_policy_recovers_then_writes_on_top_of_history(
    make_backend: MakeBackend, vault: Vault
) -> None:
    """Case C19(b), with the vault answering 404 while it recovers."""
    backend = make_backend(on_conflict="recover")
    first = write_and_delete(backend, vault)

    new = put(backend, "db-password", b"NEW")

    assert backend.read("db-password").value.reveal() == b"NEW"
    assert backend.read("db-password", stage=Stage.PREVIOUS).version == first
    assert [info.version for info in backend.versions("db-password")] == [first, new]


def test_purge_policy_purges_and_waits_out_the_limbo(
    make_backend: MakeBackend, vault: Vault
) -> None:
    """Case C19(c): 409 ObjectIsBeingDeleted for a while after the purge."""
    backend = make_backend(on_conflict="purge")
    write_and_delete(backend, vault)

    new = put(backend, "db-password", b"NEW")

    assert [info.version for info in backend.versions("db-password")] == [new]
    assert backend.read("db-password").value.reveal() == b"NEW"
    statuses = requests_to(vault, "PUT", "/secrets/db-hpassword")
    assert statuses[0] == 409 and statuses[-1] == 200


def test_purge_protection_is_an_explicit_error_and_changes_nothing(
    make_backend: MakeBackend, vault: Vault
) -> None:
    """Case C19(d)."""
    backend = make_backend(on_conflict="purge")
    write_and_delete(backend, vault)
    vault.faults.purge_protection = True

    with pytest.raises(Conflict, match="purge not allowed"):
        put(backend, "db-password", b"NEW")

    assert vault.deleted(secret_name("db-password"))
    assert vault.secrets() == []
    assert requests_to(vault, "DELETE", "/deletedsecrets/db-hpassword") == []


def test_limbo_longer_than_the_wait_fails_instead_of_reporting_success(
    make_backend: MakeBackend, vault: Vault
) -> None:
    backend = make_backend(on_conflict="purge", purge_wait_seconds=0.3)
    write_and_delete(backend, vault)
    vault.faults.limbo_seconds = 60

    with pytest.raises(BackendUnavailable, match="limbo"):
        put(backend, "db-password", b"NEW")
    assert vault.secrets() == []


# Throttling (C27) -------------------------------------------------------------


def test_throttling_is_retried_after_retry_after_then_reported(
    make_backend: MakeBackend, vault: Vault
) -> None:
    """Case C27: bounded attempts, each after the pause the vault asked for."""
    backend = make_backend(max_attempts=3)
    seed(vault, ["busy"])
    vault.faults.throttle_next = 100

    with pytest.raises(Throttled) as throttled:
        backend.read("busy")

    assert throttled.value.retry_after == 1
    attempts = [
        seen.at
        for seen in vault.seen
        if seen.path == "/secrets/busy/" and seen.sent_authorization
    ]
    assert len(attempts) == 3
    assert all(
        later - earlier >= 0.9 for earlier, later in itertools.pairwise(attempts)
    )


def test_retry_after_beyond_the_limit_is_reported_at_once(
    make_backend: MakeBackend, vault: Vault
) -> None:
    backend = make_backend(max_retry_after_seconds=5)
    seed(vault, ["busy"])
    vault.faults.throttle_next = 100
    vault.faults.retry_after = 120

    with pytest.raises(Throttled) as throttled:
        backend.read("busy")

    assert throttled.value.retry_after == 120
    assert len(requests_to(vault, "GET", "/secrets/busy/")) == 1


def test_bulk_reads_under_throttling_return_every_value(
    kv: AzureBackend, vault: Vault
) -> None:
    """Case C27: 20 % of calls answer 429; nothing is dropped, nothing hammered."""
    paths = [f"bulk{index:02d}" for index in range(40)]
    seed(vault, paths)
    vault.faults.throttle_fraction = 0.2
    values: dict[str, bytes] = {}
    failures: list[BaseException] = []

    def read_some(chunk: list[str]) -> None:
        for path in chunk:
            try:
                values[path] = kv.read(path).value.reveal()
            except TokenBrokerError as error:
                failures.append(error)

    threads = [
        threading.Thread(target=read_some, args=(paths[i::8],)) for i in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert values == {path: f"value of {path}".encode() for path in paths}
    assert any(seen.status == 429 for seen in vault.seen)
    assert all(len(requests_to(vault, "GET", f"/secrets/{p}/")) <= 5 for p in paths)


# Credentials and configuration ------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer made-up"}, {"Authorization": "Basic eDp5"}],
    ids=["no-token", "unknown-token", "not-bearer"],
)
def test_fake_vault_refuses_requests_without_a_token_it_issued(
    fake: FakeKeyVault, vault: Vault, headers: dict[str, str]
) -> None:
    """The fake answers the challenge the SDK needs before it asks for a token."""
    trust = ssl.create_default_context(cafile=fake.files.ca_bundle)
    with httpx.Client(verify=trust) as client:
        answer = client.get(f"{fake.url}/secrets", headers=headers)

    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer authorization=")


def test_wrong_client_secret_is_backend_unauthorized_without_the_secret(
    make_backend: MakeBackend, fake: FakeKeyVault, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-secret-4e1f\n")
    config = backend_config(fake).credential.model_dump()
    backend = make_backend(credential={**config, "client_secret_file": str(wrong)})

    with pytest.raises(BackendUnauthorized) as refused:
        backend.check()
    assert "not-the-secret-4e1f" not in str(refused.value)


@pytest.mark.parametrize(
    "content",
    [b"", b"\n", b"two\nlines\n", b"carriage\rreturn"],
    ids=["empty", "only-newline", "two-lines", "carriage-return"],
)
def test_unusable_client_secret_file_stops_start_up_naming_the_key(
    fake: FakeKeyVault, tmp_path: Path, content: bytes
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(content)
    config = backend_config(fake).credential.model_dump()

    with pytest.raises(ConfigurationError, match="client_secret_file") as refused:
        connect(
            "azure",
            backend_config(
                fake, credential={**config, "client_secret_file": str(secret_file)}
            ),
        )
    assert "lines" not in str(refused.value)


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"vault_url": "http://kv.vault.azure.net"}, "vault_url"),
        ({"vault_url": "https://kv.vault.azure.net/?sig=x"}, "vault_url"),
        ({"name_prefix": "team"}, "name_prefix"),
        ({"on_conflict": "ignore"}, "on_conflict"),
        ({"max_value_bytes": 65536}, "max_value_bytes"),
        ({"surprise": True}, "surprise"),
        (
            {"credential": {"kind": "client_secret", "tenant_id": "t"}},
            "credential.client_secret.client_id",
        ),
    ],
    ids=[
        "http",
        "query",
        "prefix-without-slash",
        "unknown-policy",
        "over-azure-limit",
        "unknown-key",
        "incomplete-credential",
    ],
)
def test_bad_configuration_is_refused_naming_the_key(
    options: dict[str, object], key: str
) -> None:
    raw = {"type": "azure", "vault_url": "https://kv.vault.azure.net", **options}

    with pytest.raises(ConfigurationError, match=key.replace(".", r"\.")):
        parse_config("environments.prod.backends.kv", raw)


def test_default_credential_is_the_default() -> None:
    config = parse_config(
        "backends.kv", {"type": "azure", "vault_url": "https://kv.vault.azure.net"}
    )

    assert config.credential.kind == "default"  # type: ignore[attr-defined]


def test_unreachable_vault_is_unavailable(fake: FakeKeyVault) -> None:
    config = backend_config(
        fake, vault_url="https://127.0.0.1:1", max_attempts=1, timeout_seconds=5
    )
    backend = connect("azure", config)
    try:
        with pytest.raises(BackendUnavailable):
            backend.check()
    finally:
        backend.close()


# Error translation -------------------------------------------------------------


def sdk_exception_classes() -> list[type[BaseException]]:
    return sorted(
        {
            value
            for module in (azure.core.exceptions, azure.identity)
            for _name, value in inspect.getmembers(module, inspect.isclass)
            if issubclass(value, BaseException)
            and value.__module__.startswith(("azure.core", "azure.identity"))
        },
        key=lambda kind: kind.__name__,
    )


def test_every_sdk_exception_has_a_translation_of_its_own() -> None:
    """A new exception in azure-core or azure-identity fails here until mapped."""
    mapped = {kind for kind, _rule in TRANSLATIONS}

    assert [kind for kind in sdk_exception_classes() if kind not in mapped] == []


def test_translations_are_ordered_most_specific_first() -> None:
    for index, (kind, _rule) in enumerate(TRANSLATIONS):
        earlier = [other for other, _ in TRANSLATIONS[:index]]
        assert not [other for other in earlier if issubclass(kind, other)], kind


def make_error(kind: type[BaseException], text: str) -> BaseException:
    """An instance of `kind` whose own message carries `text`."""
    try:
        if kind is azure.identity.AuthenticationRequiredError:
            return kind(["scope"], message=text)
        return kind(text)
    except (TypeError, AttributeError):
        error = kind.__new__(kind)
        Exception.__init__(error, text)
        return error


@pytest.mark.parametrize(
    "kind", sdk_exception_classes(), ids=lambda kind: kind.__name__
)
def test_translated_errors_never_repeat_the_sdk_message(
    kind: type[BaseException],
) -> None:
    """Case C17(d): SDK texts may echo URLs with tokens in the query."""
    canary = "https://kv.vault.azure.net/secrets/x?sig=canary-token-81c2"

    translated = translate(make_error(kind, canary), "secret 'x'")

    assert isinstance(translated, TokenBrokerError)
    assert "canary-token-81c2" not in str(translated)


def http_error(status: int, inner_code: str | None = None) -> HttpResponseError:
    error = HttpResponseError("boom")
    error.status_code = status
    if inner_code is not None:
        error.error = ODataV4Format(
            {"error": {"code": "Forbidden", "innererror": {"code": inner_code}}}
        )
    return error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (http_error(404), SecretNotFound),
        (http_error(409), Conflict),
        (http_error(429), Throttled),
        (http_error(403), BackendUnauthorized),
        (http_error(403, "SecretDisabled"), VersionDisabled),
        (http_error(401), BackendUnauthorized),
        (http_error(503), BackendUnavailable),
        (http_error(400), BackendError),
        (azure.core.exceptions.ResourceNotFoundError("x"), SecretNotFound),
        (azure.core.exceptions.ResourceExistsError("x"), Conflict),
        (azure.core.exceptions.ClientAuthenticationError("x"), BackendUnauthorized),
        (azure.identity.CredentialUnavailableError("x"), BackendUnauthorized),
        (azure.core.exceptions.ServiceRequestError("x"), BackendUnavailable),
        (azure.core.exceptions.ServiceResponseTimeoutError("x"), BackendUnavailable),
        (azure.core.exceptions.DecodeError("x"), BackendError),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else None,
)
def test_sdk_errors_translate_to_the_broker_condition(
    error: BaseException, expected: type[TokenBrokerError]
) -> None:
    assert type(translate(error, "secret 'x'")) is expected
