"""The `azure` backend: secrets in Azure Key Vault, through the SDK's sync client.

Names. Key Vault allows only `[0-9a-zA-Z-]` (1-127 characters) and compares
names case-insensitively, so `name_prefix + path` is escaped into lowercase with a
prefix-free code: `a-z` and `0-9` stand for themselves, `--` is `/`, `-h` is `-`,
`-p` is `.`, `-u` is `_`, and every other UTF-8 byte (uppercase letters included)
is `-` and two lowercase hex digits. `payments/stripe-key` becomes
`payments--stripe-hkey`. Decoding accepts only names that encode back to
themselves, so two paths never share a name and a listing never decodes a
hand-made name into someone else's path. The original path is also kept in the
`tokenbroker-path` tag for people reading the vault.

Stages. Every version the broker writes carries a sequence number and the three
stage pointers as they stand after that write (`tokenbroker-current`, `-previous`,
`-pending`; `self` names the version itself, whose id is unknown before it
exists). Only the head, the newest version, is authoritative: a write creates
the new head and its pointers in one request, and promote rewrites the head's
tags in one request. Reading "current" reads the head (Azure's "latest"), then
follows its pointer, so a pending write, which is the newest version in Azure,
never changes what current reads return. Programs that read the vault directly
see a pending version as "latest": they must go through the broker. When the
head itself is disabled, Key Vault refuses to get it; its tags are then read
from the version listing (highest creation time and sequence).

Compare-and-set. Key Vault has no conditional write, so a write takes a lock
per name (striped, in this process), reads the head, checks the expected
version, writes, then reads the head again: if another writer created a version
from the same base in between, this write's version is disabled and Conflict is
raised. TODO: two broker processes writing one secret at the same moment can
still both succeed when neither re-read sees the other (the later one wins and
the earlier version is orphaned); run one broker per vault, or put these secrets
on a backend with a real compare-and-set, until Key Vault offers one.

Values. Text is stored as is (`text/plain; charset=utf-8`); binary values as
base64 with the content type `application/octet-stream; base64`. The size limit
is checked in bytes before any request, on the value and on its stored form.

Soft delete. Setting a name held by a soft-deleted secret answers 409; the
`on_conflict` option decides: `fail` (Conflict, nothing changes), `recover`
(recover, wait until the secret is readable, then write on top of its history)
or `purge` (purge, then retry with backoff while the vault keeps the name in
limbo, up to `purge_wait_seconds`). The broker never deletes or purges otherwise.

Transport. Every request must go to the configured vault's origin: a pipeline
policy placed before authentication refuses any other host (a foreign
`nextLink`, a redirect), so the credential is never sent elsewhere. Listings are
paged by hand so that a repeated page link fails instead of looping. 429 and 5xx
answers are retried by the SDK's retry policy, honouring `Retry-After` up to
`max_retry_after_seconds`, at most `max_attempts` times; then Throttled.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import hashlib
import itertools
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import structlog
from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    DecodeError,
    DeserializationError,
    HttpResponseError,
    IncompleteReadError,
    ODataV4Error,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ResourceNotModifiedError,
    ResponseNotReadError,
    SerializationError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
    StreamClosedError,
    StreamConsumedError,
    TooManyRedirectsError,
)
from azure.core.paging import ItemPaged
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import (
    RedirectPolicy,
    RetryPolicy,
    SansIOHTTPPolicy,
)
from azure.identity import (
    AuthenticationRequiredError,
    ClientSecretCredential,
    CredentialUnavailableError,
    DefaultAzureCredential,
)
from azure.keyvault.secrets import KeyVaultSecret, SecretClient, SecretProperties
from pydantic import BaseModel, ConfigDict, Field, field_validator

from backends.base import (
    ABSENT,
    SecretPage,
    SecretSummary,
    SecretVersion,
    Stage,
    VersionInfo,
    _Absent,
)
from backends.registry import BackendContext
from service.clock import Clock, SystemClock
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

log = structlog.get_logger(__name__)

T = TypeVar("T")

TEXT = "text/plain; charset=utf-8"
BINARY = "application/octet-stream; base64"
TAG_PATH = "tokenbroker-path"
TAG_SEQUENCE = "tokenbroker-seq"
TAG_IDEMPOTENCY = "tokenbroker-idempotency"
TAG_STAGE = {
    Stage.CURRENT: "tokenbroker-current",
    Stage.PREVIOUS: "tokenbroker-previous",
    Stage.PENDING: "tokenbroker-pending",
}
SELF = "self"
MAX_NAME_LENGTH = 127
AZURE_VALUE_LIMIT = 25 * 1024
PAGE_SIZE = 25
MAX_PAGES = 100_000
LOCK_STRIPES = 64
VERSION_ID = re.compile(r"[0-9a-f]{32}")
ERROR_CODE = re.compile(r"[A-Za-z0-9]{1,64}")
EPOCH = datetime.fromtimestamp(0, tz=UTC)

# Name escaping ---------------------------------------------------------------

_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_ESCAPES = {"/": "--", "-": "-h", ".": "-p", "_": "-u"}
_UNESCAPES = {code[1]: char for char, code in _ESCAPES.items()}
_HEX = frozenset("0123456789abcdef")


def secret_name(path: str) -> str:
    """The Key Vault name of a broker path (see the module docstring).

    Raises InvalidRequest when the path is empty or cannot be UTF-8 encoded.
    """
    if not path:
        raise InvalidRequest("a secret path must not be empty")
    parts: list[str] = []
    for char in path:
        if char in _PLAIN:
            parts.append(char)
        elif char in _ESCAPES:
            parts.append(_ESCAPES[char])
        else:
            try:
                encoded = char.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidRequest("a secret path must be valid Unicode") from None
            parts.extend(f"-{byte:02x}" for byte in encoded)
    return "".join(parts)


def secret_path(name: str) -> str | None:
    """The broker path a Key Vault name stands for; None when it is not one."""
    decoded = bytearray()
    index = 0
    while index < len(name):
        char = name[index]
        if char in _PLAIN:
            decoded.append(ord(char))
            index += 1
        elif char != "-" or index + 1 >= len(name):
            return None
        elif name[index + 1] in _UNESCAPES:
            decoded.extend(_UNESCAPES[name[index + 1]].encode())
            index += 2
        elif set(name[index + 1 : index + 3]) <= _HEX and index + 2 < len(name):
            decoded.append(int(name[index + 1 : index + 3], 16))
            index += 3
        else:
            return None
    try:
        path = decoded.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return path if path and secret_name(path) == name else None


# Configuration ---------------------------------------------------------------


class DefaultCredentialConfig(BaseModel):
    """`{kind: default}`: DefaultAzureCredential (workload or managed identity, …)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["default"] = "default"


class ClientSecretCredentialConfig(BaseModel):
    """`{kind: client_secret}`: an app registration's secret, read from a file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["client_secret"]
    tenant_id: str = Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z.-]{0,99}$")
    client_id: str = Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z.-]{0,99}$")
    client_secret_file: Path
    authority: str | None = None
    """The Entra host, for a sovereign cloud (`https://login.microsoftonline.us`)."""
    disable_instance_discovery: bool = False

    @field_validator("authority")
    @classmethod
    def _https_authority(cls, value: str | None) -> str | None:
        return None if value is None else _https_origin(value, "authority")


class AzureConfig(BaseModel):
    """`{type: azure, vault_url: https://NAME.vault.azure.net, …}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["azure"]
    vault_url: str
    credential: Annotated[
        DefaultCredentialConfig | ClientSecretCredentialConfig,
        Field(discriminator="kind"),
    ] = Field(default_factory=DefaultCredentialConfig)
    ca_bundle: Path | None = None
    """CA certificates for every connection (vault and token endpoint)."""
    verify_challenge_resource: bool = True
    name_prefix: str = ""
    on_conflict: Literal["fail", "recover", "purge"] = "fail"
    purge_wait_seconds: float = Field(default=30, gt=0, le=600)
    max_value_bytes: int = Field(default=AZURE_VALUE_LIMIT, ge=1, le=AZURE_VALUE_LIMIT)
    max_attempts: int = Field(default=5, ge=1, le=10)
    max_retry_after_seconds: float = Field(default=60, ge=0, le=600)
    timeout_seconds: float = Field(default=30, gt=0, le=300)

    @field_validator("vault_url")
    @classmethod
    def _https_vault(cls, value: str) -> str:
        return _https_origin(value, "vault_url", allow_path=True)

    @field_validator("name_prefix")
    @classmethod
    def _prefix_is_a_folder(cls, value: str) -> str:
        if value and not value.endswith("/"):
            raise ValueError("must be empty or end with '/'")
        return value


def _https_origin(value: str, key: str, *, allow_path: bool = False) -> str:
    parts = urlsplit(value)
    if (
        parts.scheme != "https"
        or not parts.hostname
        or parts.username is not None
        or parts.query
        or parts.fragment
        or (parts.path.strip("/") and not allow_path)
    ):
        raise ValueError(f"{key} must be an https:// URL with a host and no query")
    return value.rstrip("/")


Config = AzureConfig


# The backend -----------------------------------------------------------------


class AzureBackend:
    """Secret versions in one Azure Key Vault, under an optional name prefix."""

    def __init__(
        self,
        name: str,
        *,
        client: SecretClient,
        credential: TokenCredential,
        clock: Clock,
        name_prefix: str = "",
        on_conflict: Literal["fail", "recover", "purge"] = "fail",
        purge_wait_seconds: float = 30,
        max_value_bytes: int = AZURE_VALUE_LIMIT,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.max_value_bytes = max_value_bytes
        self._client = client
        self._credential = credential
        self._clock = clock
        self._prefix = name_prefix
        self._on_conflict = on_conflict
        self._purge_wait_seconds = purge_wait_seconds
        self._sleep = sleep
        self._locks = [threading.Lock() for _ in range(LOCK_STRIPES)]

    def __repr__(self) -> str:
        return f"AzureBackend(name={self.name!r}, vault={self._client.vault_url!r})"

    def read(
        self, path: str, *, version: str | None = None, stage: Stage | None = None
    ) -> SecretVersion:
        name = self._name(path)
        if version is not None and not VERSION_ID.fullmatch(version):
            raise SecretNotFound(f"secret {path!r} has no such version")
        state = self._require_state(name, path)
        wanted = version if version is not None else state.pointer(path, stage)

        secret = state.head_secret
        if secret is None or secret.properties.version != wanted:
            with self._azure("read", path):
                secret = self._client.get_secret(name, wanted)
        value, binary = _decode_value(path, secret)

        info = state.info(secret.properties, binary)
        log.info(
            "azure_secret_read",
            backend=self.name,
            path=path,
            version=info.version,
            stage=(stage or Stage.CURRENT).value if version is None else None,
        )
        return SecretVersion(path, info, Sensitive(value))

    def write(
        self,
        path: str,
        value: Sensitive,
        *,
        binary: bool,
        expected_version: str | _Absent | None = None,
        stage: Stage = Stage.CURRENT,
        idempotency_key: str | None = None,
    ) -> VersionInfo:
        if stage is Stage.PREVIOUS:
            raise InvalidRequest("a new version cannot be written as previous")
        name = self._name(path)
        stored = self._encode_value(path, value, binary)
        key_hash = None
        if idempotency_key is not None:
            key_hash = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]

        with self._lock(name):
            info = self._write_until_done(
                name, path, stored, expected_version, stage, key_hash
            )
        log.info(
            "azure_secret_written",
            backend=self.name,
            path=path,
            version=info.version,
            stage=stage.value,
        )
        return info

    def promote(self, path: str, version: str) -> VersionInfo:
        name = self._name(path)
        if not VERSION_ID.fullmatch(version):
            raise SecretNotFound(f"secret {path!r} has no such version")
        with self._lock(name):
            state = self._require_state(name, path)
            with self._azure("promote", path):
                target = self._client.get_secret(name, version)
            if state.pointers[Stage.CURRENT] == version:
                return state.info(target.properties)

            pending = state.pointers[Stage.PENDING]
            pointers = {
                Stage.CURRENT: version,
                Stage.PREVIOUS: state.pointers[Stage.CURRENT],
                Stage.PENDING: None if pending == version else pending,
            }
            tags = _with_pointers(state.head.tags or {}, pointers, state.head.version)
            with self._azure("promote", path):
                self._client.update_secret_properties(
                    name, state.head.version, tags=tags
                )
            after = self._require_state(name, path)
            if after.head.version != state.head.version:
                raise Conflict(f"secret {path!r} was written while being promoted")
        log.info("azure_secret_promoted", backend=self.name, path=path, version=version)
        return after.info(target.properties)

    def set_enabled(self, path: str, version: str, enabled: bool) -> None:
        name = self._name(path)
        if not VERSION_ID.fullmatch(version):
            raise SecretNotFound(f"secret {path!r} has no such version")
        with self._azure("enable" if enabled else "disable", path):
            self._client.update_secret_properties(name, version, enabled=enabled)
        log.info(
            "azure_version_enabled_set",
            backend=self.name,
            path=path,
            version=version,
            enabled=enabled,
        )

    def versions(self, path: str) -> builtins.list[VersionInfo]:
        items = self._version_items(self._name(path), path)
        if not items:
            raise SecretNotFound(f"secret {path!r} does not exist")
        items.sort(key=_order)
        state = _State.of(items[-1], None)
        return [state.info(item) for item in items]

    def list(
        self, prefix: str, *, page_size: int, page_token: str | None = None
    ) -> SecretPage:
        after = _decode_token(page_token)
        wanted = secret_name(self._prefix + prefix) if self._prefix + prefix else ""
        matches: dict[str, SecretProperties] = {}
        with self._azure("list", prefix or None):
            listing = self._client.list_properties_of_secrets(max_page_size=PAGE_SIZE)
            for page in self._pages(listing):
                for item in page:
                    if not (item.name or "").startswith(wanted):
                        continue
                    full_path = secret_path(item.name or "")
                    if full_path is None or not full_path.startswith(
                        self._prefix + prefix
                    ):
                        continue
                    path = full_path.removeprefix(self._prefix)
                    if after is None or path > after:
                        matches[path] = item

        chosen = sorted(matches)[: page_size + 1]
        items = [self._summary(path, matches[path]) for path in chosen[:page_size]]
        more = len(chosen) > page_size
        log.info(
            "azure_secrets_listed", backend=self.name, prefix=prefix, count=len(items)
        )
        return SecretPage(items, _encode_token(items[-1].path) if more else None)

    def check(self) -> None:
        with self._azure("check"):
            pages = self._client.list_properties_of_secrets(max_page_size=1).by_page()
            next(pages, None)

    def close(self) -> None:
        self._client.close()
        close = getattr(self._credential, "close", None)
        if callable(close):
            close()

    # Writing -------------------------------------------------------------------

    def _write_once(
        self,
        name: str,
        path: str,
        stored: tuple[str, str],
        expected: str | _Absent | None,
        stage: Stage,
        key_hash: str | None,
    ) -> VersionInfo:
        state = self._state(name, path)
        if key_hash is not None and state is not None:
            for item in self._version_items(name, path):
                if (item.tags or {}).get(TAG_IDEMPOTENCY) == key_hash:
                    return state.info(item)
        _check_expected(path, expected, state)

        sequence = state.sequence + 1 if state is not None else 1
        tags = _new_tags(path, state, stage, sequence)
        if key_hash is not None:
            tags[TAG_IDEMPOTENCY] = key_hash
        value, content_type = stored
        try:
            with self._azure("write", path):
                written = self._client.set_secret(
                    name, value, content_type=content_type, tags=tags
                )
        except Conflict as conflict:
            raise self._why_conflict(name, path) from conflict

        self._confirm(name, path, written.properties, sequence)
        return _State.of(written.properties, written).info(written.properties)

    def _confirm(
        self, name: str, path: str, written: SecretProperties, sequence: int
    ) -> None:
        """Raise Conflict when another writer created a version from our base."""
        state = self._state(name, path)
        if state is None or state.head.version == written.version:
            return
        if state.sequence > sequence:
            return
        log.warning(
            "azure_concurrent_write_lost",
            backend=self.name,
            path=path,
            version=written.version,
        )
        try:
            with self._azure("disable", path):
                self._client.update_secret_properties(
                    name, written.version or "", enabled=False
                )
        except TokenBrokerError as error:
            log.error(
                "azure_orphan_not_disabled",
                backend=self.name,
                path=path,
                version=written.version,
                error=type(error).__name__,
            )
        raise Conflict(f"secret {path!r} was written concurrently; retry")

    def _why_conflict(self, name: str, path: str) -> Exception:
        """Tell a name held by a soft-deleted secret from one in limbo."""
        try:
            with self._azure("write", path):
                deleted = self._client.get_deleted_secret(name)
        except SecretNotFound:
            return _NameInLimbo()
        return _NameHeld(deleted.properties.recovery_level or "")

    def _write_until_done(
        self,
        name: str,
        path: str,
        stored: tuple[str, str],
        expected: str | _Absent | None,
        stage: Stage,
        key_hash: str | None,
    ) -> VersionInfo:
        """Write, freeing a soft-deleted name or waiting out its limbo as allowed."""
        deadline = self._clock.now() + self._purge_wait_seconds
        for attempt in itertools.count():
            try:
                return self._write_once(name, path, stored, expected, stage, key_hash)
            except _NameHeld as held:
                if self._on_conflict == "recover":
                    self._recover(name, path, deadline)
                elif self._on_conflict == "purge":
                    self._purge(name, path, held)
                else:
                    raise Conflict(
                        f"secret {path!r}: name is held by a soft-deleted secret; "
                        "recover or purge"
                    ) from None
            except _NameInLimbo:
                self._pause(path, attempt, deadline)
        raise AssertionError("unreachable")  # pragma: no cover

    def _recover(self, name: str, path: str, deadline: float) -> None:
        """Recover the soft-deleted secret and wait until it can be read."""
        with self._azure("recover", path):
            # The SDK's poller is not waited on: that would start a thread; the
            # loop below polls with the broker's own clock instead.
            self._client.begin_recover_deleted_secret(name)
        log.warning("azure_secret_recovering", backend=self.name, path=path)
        for attempt in itertools.count():
            if self._state(name, path) is not None:
                return
            self._pause(path, attempt, deadline)

    def _purge(self, name: str, path: str, held: _NameHeld) -> None:
        """Purge the soft-deleted secret; refuse when the vault protects it."""
        level = held.recovery_level.lower()
        if level and "purgeable" not in level:
            raise Conflict(
                f"secret {path!r}: name is held by a soft-deleted secret and purge "
                "not allowed (purge protection); recover it instead"
            )
        try:
            with self._azure("purge", path):
                self._client.purge_deleted_secret(name)
        except BackendUnauthorized as refused:
            raise Conflict(
                f"secret {path!r}: name is held by a soft-deleted secret and purge "
                "not allowed by the vault"
            ) from refused
        log.warning("azure_secret_purged", backend=self.name, path=path)

    def _pause(self, path: str, attempt: int, deadline: float) -> None:
        remaining = deadline - self._clock.now()
        if remaining <= 0:
            raise BackendUnavailable(
                f"secret {path!r}: the vault kept the name in soft-delete limbo for "
                f"more than {self._purge_wait_seconds:g} s"
            )
        log.warning("azure_name_in_limbo", backend=self.name, path=path)
        self._sleep(min(2.0, 0.1 * 2**attempt, remaining))

    def _encode_value(
        self, path: str, value: Sensitive, binary: bool
    ) -> tuple[str, str]:
        """The value as Key Vault stores it, and its content type; sizes checked."""
        raw = value.reveal()
        if len(raw) > self.max_value_bytes:
            raise PayloadTooLarge(
                f"the value of secret {path!r} is {len(raw)} bytes; the limit of "
                f"backend {self.name!r} is {self.max_value_bytes} bytes"
            )
        if binary:
            text, content_type = base64.b64encode(raw).decode("ascii"), BINARY
        else:
            try:
                text, content_type = raw.decode("utf-8"), TEXT
            except UnicodeDecodeError:
                raise InvalidRequest(
                    f"the value of secret {path!r} is not UTF-8 text; write it as "
                    "binary"
                ) from None
        stored = len(text.encode("utf-8"))
        if stored > self.max_value_bytes:
            raise PayloadTooLarge(
                f"the value of secret {path!r} is {len(raw)} bytes, {stored} bytes "
                f"once base64-encoded; the limit of backend {self.name!r} is "
                f"{self.max_value_bytes} bytes"
            )
        return text, content_type

    # Reading state -------------------------------------------------------------

    def _state(self, name: str, path: str) -> _State | None:
        """The head version and its pointers; None when the secret does not exist."""
        try:
            with self._azure("read", path):
                head = self._client.get_secret(name)
        except SecretNotFound:
            return None
        except VersionDisabled:
            items = self._version_items(name, path)
            return _State.of(max(items, key=_order), None) if items else None
        return _State.of(head.properties, head)

    def _require_state(self, name: str, path: str) -> _State:
        state = self._state(name, path)
        if state is None:
            raise SecretNotFound(f"secret {path!r} does not exist")
        return state

    def _version_items(self, name: str, path: str) -> builtins.list[SecretProperties]:
        try:
            with self._azure("list versions", path):
                listing = self._client.list_properties_of_secret_versions(
                    name, max_page_size=PAGE_SIZE
                )
                return [item for page in self._pages(listing) for item in page]
        except SecretNotFound:
            return []

    def _summary(self, path: str, item: SecretProperties) -> SecretSummary:
        current = (item.tags or {}).get(TAG_STAGE[Stage.CURRENT])
        if TAG_SEQUENCE not in (item.tags or {}) or current == SELF:
            state = self._state(item.name or "", path)
            current = state.pointers[Stage.CURRENT] if state is not None else None
        elif current is not None and not VERSION_ID.fullmatch(current):
            current = None
        return SecretSummary(path, current, item.updated_on)

    def _pages(self, listing: ItemPaged[T]) -> Iterator[builtins.list[T]]:
        """Every page of a listing; refuses foreign and repeated page links."""
        pages = listing.by_page()
        seen: set[str] = set()
        for _page in range(MAX_PAGES):
            page = next(pages, None)
            if page is None:
                return
            yield list(page)
            link = getattr(pages, "continuation_token", None)
            if not link:
                return
            if _origin(str(link)) != _origin(self._client.vault_url):
                raise _ForeignHost()
            if link in seen:
                raise BackendError(
                    "Azure Key Vault repeated a page link; the listing was stopped"
                )
            seen.add(str(link))
        raise BackendError("Azure Key Vault listing did not end")

    # Helpers -------------------------------------------------------------------

    def _name(self, path: str) -> str:
        name = secret_name(self._prefix + path)
        if len(name) > MAX_NAME_LENGTH:
            raise InvalidRequest(
                f"secret path {path!r} is {len(name)} characters once escaped for "
                f"Azure Key Vault; the limit is {MAX_NAME_LENGTH}"
            )
        return name

    def _lock(self, name: str) -> threading.Lock:
        return self._locks[zlib.crc32(name.encode()) % LOCK_STRIPES]

    @contextmanager
    def _azure(self, action: str, path: str | None = None) -> Iterator[None]:
        """The one boundary where SDK errors become the broker's, cause chained."""
        try:
            yield
        except TokenBrokerError:
            raise
        except TRANSLATED as error:
            translated = translate(error, f"secret {path!r}" if path else "the vault")
            report = getattr(log, _LOG_LEVELS.get(type(translated), "error"))
            report(
                "azure_request_failed",
                backend=self.name,
                action=action,
                path=path,
                status=getattr(error, "status_code", None),
                error_code=_error_code(error),
                error=type(error).__name__,
                outcome=type(translated).__name__,
            )
            raise translated from error


# State and tags ----------------------------------------------------------------


@dataclass(frozen=True)
class _State:
    """The head version of a secret and the stage pointers its tags hold."""

    head: SecretProperties
    head_secret: KeyVaultSecret | None
    pointers: Mapping[Stage, str | None]
    sequence: int

    @classmethod
    def of(cls, head: SecretProperties, secret: KeyVaultSecret | None) -> _State:
        tags = head.tags or {}
        version = head.version or ""
        if TAG_SEQUENCE not in tags:
            # Written by someone else than the broker: its newest version is current.
            pointers = {
                Stage.CURRENT: version,
                Stage.PREVIOUS: None,
                Stage.PENDING: None,
            }
        else:
            pointers = {
                stage: _pointer(tags.get(TAG_STAGE[stage]), version) for stage in Stage
            }
        return cls(head, secret, pointers, _sequence(tags))

    def pointer(self, path: str, stage: Stage | None) -> str:
        label = stage or Stage.CURRENT
        version = self.pointers[label]
        if version is None:
            raise SecretNotFound(f"secret {path!r} has no {label.value} version")
        return version

    def info(self, item: SecretProperties, binary: bool | None = None) -> VersionInfo:
        stages = frozenset(
            stage for stage, version in self.pointers.items() if version == item.version
        )
        return VersionInfo(
            item.version or "",
            item.created_on or EPOCH,
            stages,
            enabled=item.enabled is not False,
            binary=_is_binary(item.content_type) if binary is None else binary,
        )


def _pointer(tag: str | None, head_version: str) -> str | None:
    if tag == SELF:
        return head_version
    return tag if tag is not None and VERSION_ID.fullmatch(tag) else None


def _sequence(tags: Mapping[str, str]) -> int:
    text = tags.get(TAG_SEQUENCE, "")
    return int(text) if text.isdigit() else 0


def _order(item: SecretProperties) -> tuple[datetime, int]:
    return item.created_on or EPOCH, _sequence(item.tags or {})


def _new_tags(
    path: str, state: _State | None, stage: Stage, sequence: int
) -> dict[str, str]:
    """Tags of a new head: its path, sequence number and the stage pointers."""
    current = state.pointers[Stage.CURRENT] if state is not None else None
    if stage is Stage.CURRENT:
        # An explicit new current value also ends any half-finished rotation.
        pointers = {Stage.CURRENT: SELF, Stage.PREVIOUS: current, Stage.PENDING: None}
    else:
        previous = state.pointers[Stage.PREVIOUS] if state is not None else None
        pointers = {
            Stage.CURRENT: current,
            Stage.PREVIOUS: previous,
            Stage.PENDING: SELF,
        }
    tags = {TAG_PATH: path, TAG_SEQUENCE: str(sequence)}
    return _with_pointers(tags, pointers, None)


def _with_pointers(
    tags: Mapping[str, str], pointers: Mapping[Stage, str | None], head: str | None
) -> dict[str, str]:
    updated = {key: value for key, value in tags.items() if key not in _STAGE_TAGS}
    for stage, version in pointers.items():
        if version is not None:
            updated[TAG_STAGE[stage]] = SELF if version == head else version
    return updated


_STAGE_TAGS = frozenset(TAG_STAGE.values())


def _check_expected(
    path: str, expected: str | _Absent | None, state: _State | None
) -> None:
    if expected is None:
        return
    current = state.pointers[Stage.CURRENT] if state is not None else None
    if expected is ABSENT:
        if state is not None:
            raise PreconditionFailed(
                f"secret {path!r} already exists; current version {current}"
            )
        return
    if current is None or expected != current:
        raise PreconditionFailed(
            f"secret {path!r} is at version {current}, not {expected}"
        )


def _is_binary(content_type: str | None) -> bool:
    return (content_type or "").replace(" ", "").lower() == BINARY.replace(" ", "")


def _decode_value(path: str, secret: KeyVaultSecret) -> tuple[bytes, bool]:
    text = secret.value
    if text is None:
        raise BackendError(f"Azure Key Vault answered secret {path!r} without a value")
    if _is_binary(secret.properties.content_type):
        try:
            return base64.b64decode(text, validate=True), True
        except (binascii.Error, ValueError):
            raise BackendError(
                f"the stored binary value of secret {path!r} is not valid base64"
            ) from None
    try:
        return text.encode("utf-8"), False
    except UnicodeEncodeError:
        raise BackendError(f"the stored value of secret {path!r} is not text") from None


def _encode_token(path: str) -> str:
    return base64.urlsafe_b64encode(path.encode()).decode().rstrip("=")


def _decode_token(token: str | None) -> str | None:
    if not token:
        return None
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidRequest("page_token is not one this broker issued") from None


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return ("", "", 0)
    scheme = parts.scheme.lower()
    return (
        scheme,
        (parts.hostname or "").lower(),
        port or (443 if scheme == "https" else 80),
    )


# Transport policies ------------------------------------------------------------


class _NameHeld(Exception):
    """A write met a name held by a soft-deleted secret."""

    def __init__(self, recovery_level: str) -> None:
        super().__init__("name held by a soft-deleted secret")
        self.recovery_level = recovery_level


class _NameInLimbo(Exception):
    """A write met a name that is being purged or recovered."""


class _ForeignHost(Exception):
    """A request was about to leave the configured vault's origin."""


class _WaitTooLong(Exception):
    """The vault asked to wait longer than the broker is willing to."""

    def __init__(self, seconds: float) -> None:
        super().__init__("retry-after beyond the configured limit")
        self.seconds = seconds


class _SameOrigin(SansIOHTTPPolicy):  # type: ignore[type-arg]
    """Refuses every request to another origin than the vault's, before auth."""

    def __init__(self, vault_url: str) -> None:
        super().__init__()
        self._origin = _origin(vault_url)

    def on_request(self, request: PipelineRequest[Any]) -> None:
        if _origin(request.http_request.url) != self._origin:
            raise _ForeignHost()


class _RetryAfterLimit(SansIOHTTPPolicy):  # type: ignore[type-arg]
    """Stops retrying when the vault asks for a longer pause than allowed."""

    def __init__(self, limit: float) -> None:
        super().__init__()
        self._limit = limit

    def on_response(
        self, request: PipelineRequest[Any], response: PipelineResponse[Any, Any]
    ) -> None:
        seconds = retry_after(response.http_response.headers)
        if seconds is not None and seconds > self._limit:
            raise _WaitTooLong(seconds)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds a `Retry-After` (or `retry-after-ms`) header asks to wait."""
    lowered = {key.lower(): value for key, value in headers.items()}
    for header, scale in (
        ("retry-after", 1.0),
        ("retry-after-ms", 0.001),
        ("x-ms-retry-after-ms", 0.001),
    ):
        text = lowered.get(header, "").strip()
        if not text:
            continue
        try:
            return max(0.0, float(text) * scale)
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return None


# Error translation -------------------------------------------------------------

Rule = Callable[[Any, str], TokenBrokerError]


def _not_found(error: Any, subject: str) -> TokenBrokerError:
    return SecretNotFound(f"{subject} was not found in Azure Key Vault")


def _conflict(error: Any, subject: str) -> TokenBrokerError:
    return Conflict(f"Azure Key Vault refused {subject} as conflicting")


def _modified(error: Any, subject: str) -> TokenBrokerError:
    return PreconditionFailed(f"{subject} changed in Azure Key Vault")


def _unauthorized(error: Any, subject: str) -> TokenBrokerError:
    return BackendUnauthorized(
        f"Azure Key Vault or Entra ID refused the broker's credential for {subject}"
    )


def _no_credential(error: Any, subject: str) -> TokenBrokerError:
    return BackendUnauthorized(f"no Azure credential is available for {subject}")


def _unavailable(error: Any, subject: str) -> TokenBrokerError:
    return BackendUnavailable(f"Azure Key Vault cannot be reached for {subject}")


def _unexpected(error: Any, subject: str) -> TokenBrokerError:
    return BackendError(f"Azure Key Vault failed unexpectedly for {subject}")


def _foreign_host(error: Any, subject: str) -> TokenBrokerError:
    return BackendError(
        f"Azure Key Vault sent a link to another host for {subject}; the broker "
        "does not follow it and the listing is incomplete"
    )


def _wait_too_long(error: Any, subject: str) -> TokenBrokerError:
    return Throttled(
        f"Azure Key Vault is throttling {subject} longer than the broker waits",
        retry_after=error.seconds,
    )


def _by_status(error: Any, subject: str) -> TokenBrokerError:
    status = error.status_code
    if status == 404:
        return _not_found(error, subject)
    if status == 409:
        return _conflict(error, subject)
    if status == 412:
        return _modified(error, subject)
    if status == 429:
        seconds = None
        if error.response is not None:
            seconds = retry_after(error.response.headers)
        return Throttled(f"Azure Key Vault is throttling {subject}", seconds)
    if status == 403 and _error_code(error, inner=True) == "SecretDisabled":
        return VersionDisabled(f"the version asked for of {subject} is disabled")
    if status in (401, 403):
        return _unauthorized(error, subject)
    if status == 413:
        return PayloadTooLarge(f"Azure Key Vault refused {subject} as too large")
    if status in (500, 502, 503, 504):
        return _unavailable(error, subject)
    return _unexpected(error, subject)


# Most specific first: the first class that matches decides.
TRANSLATIONS: tuple[tuple[type[BaseException], Rule], ...] = (
    (_ForeignHost, _foreign_host),
    (_WaitTooLong, _wait_too_long),
    (AuthenticationRequiredError, _unauthorized),
    (CredentialUnavailableError, _no_credential),
    (ClientAuthenticationError, _unauthorized),
    (ResourceNotFoundError, _not_found),
    (ResourceExistsError, _conflict),
    (ResourceModifiedError, _modified),
    (ResourceNotModifiedError, _unexpected),
    (TooManyRedirectsError, _unexpected),
    (IncompleteReadError, _unavailable),
    (DecodeError, _unexpected),
    (ODataV4Error, _by_status),
    (HttpResponseError, _by_status),
    (ServiceRequestTimeoutError, _unavailable),
    (ServiceRequestError, _unavailable),
    (ServiceResponseTimeoutError, _unavailable),
    (ServiceResponseError, _unavailable),
    (StreamClosedError, _unexpected),
    (StreamConsumedError, _unexpected),
    (ResponseNotReadError, _unexpected),
    (SerializationError, _unexpected),
    (DeserializationError, _unexpected),
    (AzureError, _unexpected),
    # The SDK raises ValueError for a challenge it will not answer.
    (ValueError, _unexpected),
)
TRANSLATED = tuple(kind for kind, _rule in TRANSLATIONS)

_LOG_LEVELS: dict[type[TokenBrokerError], str] = {
    SecretNotFound: "debug",
    VersionDisabled: "debug",
    Conflict: "info",
    PreconditionFailed: "info",
    Throttled: "warning",
    BackendUnavailable: "warning",
}


def translate(error: BaseException, subject: str) -> TokenBrokerError:
    """The broker's error for an SDK error; messages are built, never copied."""
    for kind, rule in TRANSLATIONS:
        if isinstance(error, kind):
            return rule(error, subject)
    return _unexpected(error, subject)


def _error_code(error: BaseException, *, inner: bool = False) -> str | None:
    """Key Vault's error code, only when it is a plain identifier."""
    details = getattr(error, "error", None)
    code = getattr(details, "code", None)
    if inner:
        innererror = getattr(details, "innererror", None) or {}
        code = innererror.get("code") if isinstance(innererror, Mapping) else None
    return code if isinstance(code, str) and ERROR_CODE.fullmatch(code) else None


# Construction ------------------------------------------------------------------


def connect(name: str, config: AzureConfig, clock: Clock | None = None) -> AzureBackend:
    """An Azure backend for `config`, with its credential and client.

    Raises ConfigurationError when the client secret file cannot be used.
    """
    credential = _credential(name, config)
    options: dict[str, Any] = {
        "verify_challenge_resource": config.verify_challenge_resource,
        "retry_policy": RetryPolicy(
            retry_total=config.max_attempts - 1,
            retry_connect=min(2, config.max_attempts - 1),
            retry_read=min(2, config.max_attempts - 1),
            retry_status=config.max_attempts - 1,
            retry_backoff_factor=0.5,
            retry_backoff_max=8,
            timeout=config.timeout_seconds * config.max_attempts
            + config.max_retry_after_seconds * (config.max_attempts - 1),
        ),
        "redirect_policy": RedirectPolicy.no_redirects(),
        "per_retry_policies": [
            _SameOrigin(config.vault_url),
            _RetryAfterLimit(config.max_retry_after_seconds),
        ],
        "connection_timeout": config.timeout_seconds,
        "read_timeout": config.timeout_seconds,
    }
    if config.ca_bundle is not None:
        options["connection_verify"] = str(config.ca_bundle)
    client = SecretClient(config.vault_url, credential, **options)
    return AzureBackend(
        name,
        client=client,
        credential=credential,
        clock=clock or SystemClock(),
        name_prefix=config.name_prefix,
        on_conflict=config.on_conflict,
        purge_wait_seconds=config.purge_wait_seconds,
        max_value_bytes=config.max_value_bytes,
    )


def create(name: str, config: AzureConfig, context: BackendContext) -> AzureBackend:
    """The registry's entry point: an Azure Key Vault backend."""
    return connect(name, config, context.clock)


def _credential(name: str, config: AzureConfig) -> TokenCredential:
    transport: dict[str, Any] = {}
    if config.ca_bundle is not None:
        transport["connection_verify"] = str(config.ca_bundle)
    settings = config.credential
    if isinstance(settings, DefaultCredentialConfig):
        return DefaultAzureCredential(**transport)
    if settings.authority is not None:
        transport["authority"] = settings.authority
    secret = _read_client_secret(name, settings.client_secret_file)
    return ClientSecretCredential(
        settings.tenant_id,
        settings.client_id,
        secret.reveal_text(),
        disable_instance_discovery=settings.disable_instance_discovery,
        **transport,
    )


def _read_client_secret(name: str, file: Path) -> Sensitive:
    """The client secret, without the one trailing newline editors leave."""
    key = f"backends.{name}.credential.client_secret_file"
    try:
        raw = file.read_bytes()
    except OSError:
        raise ConfigurationError(f"{key}: the file cannot be read") from None
    if raw.endswith(b"\n"):
        raw = raw[:-1].removesuffix(b"\r")
    if not raw or b"\n" in raw or b"\r" in raw:
        raise ConfigurationError(f"{key}: the file must hold the secret on one line")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(f"{key}: the file is not UTF-8 text") from None
    return Sensitive(raw)
