"""The `azure` backend: secrets in Azure Key Vault, through the SDK's sync client.

The backend's parts: `azure_names` maps broker paths to Key Vault names,
`azure_versions` keeps stage pointers in tags and encodes values,
`azure_errors` translates SDK errors and guards the transport, `azure_client`
holds the configuration and builds the SDK client.

Stages. Only the head, Key Vault's "latest" version, is authoritative: its tags
hold the current, previous and pending pointers (see `azure_versions`). Reading
"current" reads the head, then follows its pointer, so a pending write, which is
the newest version in Azure, never changes what current reads return, and a read
is consistent as of that one head request. Programs reading the vault directly
see a pending version as "latest": they must go through the broker. When the
head itself is disabled, Key Vault refuses to get it; its tags are then read
from the version listing (highest creation time, then sequence number).

Compare-and-set. Key Vault has no conditional write. A write takes a lock per
name (striped, in this process), reads the head, checks the expected version,
writes, then reads the head again: if another writer created a version from the
same base meanwhile, this write's version is disabled and Conflict is raised.
TODO: two broker processes writing one secret at the same moment can still both
succeed when neither re-read sees the other (the later one wins and the earlier
version is orphaned); run one broker process per vault until Key Vault offers a
conditional write.

Soft delete. Setting a name held by a soft-deleted secret answers 409; the
`on_conflict` option decides: `fail` (Conflict, nothing changes), `recover`
(recover, wait until the secret is readable, then write on top of its history;
a create-if-absent write then fails, as the secret exists again) or `purge`
(purge, then retry with backoff while the vault keeps the name in limbo, up to
`purge_wait_seconds`). The broker never deletes or purges otherwise.

Listing. Key Vault cannot filter by prefix, so every `list` call pages through
the whole vault (25 names a page), by hand: a page link to another host or a
repeated one fails instead of being followed. TODO: cache the name scan between
the pages of one listing if vaults with many thousands of secrets appear.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import hashlib
import itertools
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal, TypeVar

import structlog
from azure.core.credentials import TokenCredential
from azure.core.paging import ItemPaged
from azure.keyvault.secrets import SecretClient, SecretProperties

from backends.azure_client import AZURE_VALUE_LIMIT, AzureConfig, build_client
from backends.azure_errors import (
    TRANSLATED,
    ForeignHost,
    error_code,
    log_level,
    origin,
    translate,
)
from backends.azure_names import MAX_NAME_LENGTH, secret_name, secret_path
from backends.azure_versions import (
    SELF,
    TAG_IDEMPOTENCY,
    TAG_SEQUENCE,
    TAG_STAGE,
    VERSION_ID,
    State,
    check_expected,
    decode_value,
    encode_value,
    new_tags,
    version_order,
    with_pointers,
)
from backends.base import (
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
    Conflict,
    InvalidRequest,
    SecretNotFound,
    TokenBrokerError,
    VersionDeleted,
    VersionDisabled,
)
from service.sensitive import Sensitive

log = structlog.get_logger(__name__)

T = TypeVar("T")

PAGE_SIZE = 25
MAX_PAGES = 100_000
LOCK_STRIPES = 64

Config = AzureConfig


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
        value, binary = decode_value(path, secret)

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
        stored = encode_value(path, value, binary, self.max_value_bytes)
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
            tags = with_pointers(state.head.tags or {}, pointers, state.head.version)
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
        items.sort(key=version_order)
        state = State.of(items[-1], None)
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
        check_expected(path, expected, state)

        sequence = state.sequence + 1 if state is not None else 1
        tags = new_tags(path, state, stage, sequence)
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
        return State.of(written.properties, written).info(written.properties)

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
        attempt = 0
        while True:
            try:
                return self._write_once(name, path, stored, expected, stage, key_hash)
            except _NameHeld as held:
                if self._on_conflict == "fail":
                    raise Conflict(
                        f"secret {path!r}: name is held by a soft-deleted secret; "
                        "recover or purge"
                    ) from None
                if attempt:
                    self._pause(path, attempt, deadline)
                if self._on_conflict == "recover":
                    self._recover(name, path, deadline)
                else:
                    self._purge(name, path, held)
            except _NameInLimbo:
                self._pause(path, attempt, deadline)
            attempt += 1

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

    # Reading state -------------------------------------------------------------

    def _state(self, name: str, path: str) -> State | None:
        """The head version and its pointers; None when the secret does not exist."""
        try:
            with self._azure("read", path):
                head = self._client.get_secret(name)
        except SecretNotFound:
            return None
        except VersionDisabled:
            items = self._version_items(name, path)
            return State.of(max(items, key=version_order), None) if items else None
        return State.of(head.properties, head)

    def _require_state(self, name: str, path: str) -> State:
        """The state of a secret that exists. Raises VersionDeleted for one that
        is soft-deleted (case C21: deleted is not missing), else SecretNotFound."""
        state = self._state(name, path)
        if state is None:
            raise self._why_missing(name, path)
        return state

    def _why_missing(self, name: str, path: str) -> TokenBrokerError:
        try:
            with self._azure("read deleted", path):
                deleted = self._client.get_deleted_secret(name)
        except (SecretNotFound, BackendUnauthorized):
            # An identity without the "get deleted" permission cannot tell.
            return SecretNotFound(f"secret {path!r} does not exist")
        when = deleted.deleted_date.isoformat() if deleted.deleted_date else "?"
        return VersionDeleted(
            f"secret {path!r} was deleted at {when} and can be recovered; "
            "recover it in Azure Key Vault to read it again"
        )

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
            if origin(str(link)) != origin(self._client.vault_url):
                raise ForeignHost()
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
            getattr(log, log_level(translated))(
                "azure_request_failed",
                backend=self.name,
                action=action,
                path=path,
                status=getattr(error, "status_code", None),
                error_code=error_code(error),
                error=type(error).__name__,
                outcome=type(translated).__name__,
            )
            raise translated from error


class _NameHeld(Exception):
    """A write met a name held by a soft-deleted secret."""

    def __init__(self, recovery_level: str) -> None:
        super().__init__("name held by a soft-deleted secret")
        self.recovery_level = recovery_level


class _NameInLimbo(Exception):
    """A write met a name that is being purged or recovered."""


def _encode_token(path: str) -> str:
    return base64.urlsafe_b64encode(path.encode()).decode().rstrip("=")


def _decode_token(token: str | None) -> str | None:
    if not token:
        return None
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidRequest("page_token is not one this broker issued") from None


def connect(name: str, config: AzureConfig, clock: Clock | None = None) -> AzureBackend:
    """An Azure backend for `config`, with its own credential and client.

    Raises ConfigurationError when the client secret file cannot be used.
    """
    client, credential = build_client(name, config)
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
