"""The `vault` backend: HashiCorp Vault or OpenBao KV version 2, through hvac.

URLs (case C20). The configured `mount` is checked against the server
(`sys/internal/ui/mounts/{mount}`, which needs no sudo): it must be exactly the
mount Vault resolves the name to (longest prefix), so `team/kv` works and
`team/kv/app` is refused with the right split, and it must be KV version 2.
The check runs at start-up, which a wrong mount stops; when the server cannot
answer then, it runs again on first use, and until it passes every request
answers 503 `backend_misconfigured` (or the server's own failure). Vault
refuses a name that is no mount with the 403 it gives a token without access;
`sys/mounts`, when the token may read it, tells the two apart, and otherwise
the 502 `backend_unauthorized` says in its detail to check the mount name too.
Each operation builds one URL, `{mount}/{data|metadata|delete|undelete}/
{path_prefix}{path}`; a path starting with `data/` or `metadata/` is refused
with a message naming the mistake. `namespace` goes into the
`X-Vault-Namespace` header of every request, listing and metadata included.

Stages. KV v2 knows versions and "latest", not stages, so the labels live in
the secret's custom_metadata (`tokenbroker-current`, `-previous`, `-pending`)
and survive restarts. Reads of current follow `tokenbroker-current`, never
KV's latest, so a pending version is the newest one without being what callers
read. Disabled versions (`-disabled`) are also soft-deleted in KV, so Vault's
own clients cannot read them either; the broker answers VersionDisabled.

Writes and concurrency (case C05a). Every data write carries KV's `cas` set to
the latest version the writer saw, so of two writers on the same base exactly
one succeeds; the other re-reads and re-checks its expected version. The
labels cannot change in the same step (HashiCorp Vault's metadata has no
compare-and-set), so each version's data records its writer's intent (current
or pending, binary or not, a digest of the idempotency key) and the labels
record `tokenbroker-applied`, the last version they account for. Whoever finds
newer versions folds their intents in before deciding anything: the versions
are the log, the labels a cache of it, and a writer that dies between its data
write and its label update loses nothing. Where the server offers metadata
check-and-set (OpenBao's `metadata_cas`), label updates use it as well.

What Vault cannot do that other stores can: versions past the mount's
`max_versions` disappear; "disabled" is a soft delete; idempotency keys are
remembered for the last few writes of a secret only; on HashiCorp Vault,
promote and set_enabled race each other last-writer-wins.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, NoReturn
from urllib.parse import quote

import requests
import structlog
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
from backends.vault_auth import AuthConfig, VaultSession, check_credentials
from service.clock import Clock, utc
from service.errors import (
    BackendError,
    BackendMisconfigured,
    BackendUnauthorized,
    ConfigurationError,
    Conflict,
    InvalidRequest,
    PayloadTooLarge,
    PreconditionFailed,
    SecretNotFound,
    VersionDeleted,
    VersionDestroyed,
    VersionDisabled,
)
from service.sensitive import Sensitive

log = structlog.get_logger(__name__)

ATTEMPTS = 5
FOLD_LIMIT = 10
REPLAYS_KEPT = 8
LIST_BUDGET = 256
LABEL_BYTES = 512  # Vault's limit on one custom_metadata value
PREFIX = "tokenbroker-"
KV_SUBPATHS = ("data", "metadata", "delete", "undelete", "destroy")
_SEGMENT = re.compile(r"[^\x00-\x1f\x7f]+")
_VERSION_NUMBER = re.compile(r"[1-9][0-9]{0,9}")


class VaultConfig(BaseModel):
    """`{type: vault, url, mount, auth, …}`; no default URL and no default token."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["vault"]
    url: str
    mount: str
    path_prefix: str = ""
    namespace: str | None = None
    auth: AuthConfig
    ca_cert: Path | None = None
    timeout: float = Field(default=10.0, gt=0, le=300)
    max_value_bytes: int = Field(default=65536, ge=1, le=24 * 1024 * 1024)
    renew_before: float = Field(default=1 / 3, gt=0, lt=1)

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        if not re.fullmatch(r"https?://[^\s/?#@]+(/[^\s?#]*)?", url):
            raise ValueError("expected an http(s) URL without credentials or query")
        return url.rstrip("/")

    @field_validator("mount")
    @classmethod
    def _check_mount(cls, mount: str) -> str:
        mount = mount.strip("/")
        if not mount:
            raise ValueError("must name a KV version 2 mount; an empty mount is not")
        _check_segments(mount)
        return mount

    @field_validator("path_prefix")
    @classmethod
    def _check_prefix(cls, prefix: str) -> str:
        prefix = prefix.strip("/")
        if not prefix:
            return ""
        _check_segments(prefix)
        _check_no_kv_subpath(prefix)
        return prefix + "/"

    @field_validator("namespace")
    @classmethod
    def _check_namespace(cls, namespace: str | None) -> str | None:
        if namespace is None:
            return None
        namespace = namespace.strip("/")
        if not namespace:
            raise ValueError("must name a namespace when given")
        _check_segments(namespace)
        return namespace


def _check_segments(path: str) -> None:
    for segment in path.split("/"):
        if segment in ("", ".", "..") or not _SEGMENT.fullmatch(segment):
            raise ValueError(
                "segments must be non-empty, not '.' or '..', without control "
                "characters"
            )


def _check_no_kv_subpath(path: str) -> None:
    first = path.split("/", 1)[0]
    if first in KV_SUBPATHS:
        raise ValueError(
            f"starts with '{first}/', which KV version 2 adds itself: give the "
            "path inside the mount ('app/db', not 'data/app/db')"
        )


@dataclass(frozen=True)
class _Entry:
    """What KV's metadata says about one version."""

    created_at: datetime
    deleted_at: datetime | None
    destroyed: bool


@dataclass(frozen=True)
class _Intent:
    """What the writer of a version meant, as recorded in its data."""

    stage: Stage
    binary: bool
    replay: str | None


@dataclass(frozen=True)
class _Labels:
    """The stage labels and bookkeeping kept in a secret's custom_metadata."""

    current: int | None = None
    previous: int | None = None
    pending: int | None = None
    applied: int = 0
    disabled: frozenset[int] = frozenset()
    binary: frozenset[int] = frozenset()
    replays: tuple[tuple[str, int], ...] = ()

    @classmethod
    def parse(cls, custom: Mapping[str, str]) -> _Labels:
        def number(key: str) -> int | None:
            raw = custom.get(PREFIX + key, "")
            return int(raw) if raw.isdigit() else None

        def numbers(key: str) -> frozenset[int]:
            raw = custom.get(PREFIX + key, "")
            return frozenset(int(item) for item in raw.split(",") if item.isdigit())

        replays = tuple(
            (digest, int(version))
            for digest, _, version in (
                item.partition(":")
                for item in custom.get(PREFIX + "replays", "").split(",")
            )
            if digest and version.isdigit()
        )
        return cls(
            number("current"),
            number("previous"),
            number("pending"),
            number("applied") or 0,
            numbers("disabled"),
            numbers("binary"),
            replays,
        )

    def render(self, live: set[int]) -> dict[str, str]:
        labels = {
            "current": _text(self.current),
            "previous": _text(self.previous),
            "pending": _text(self.pending),
            "applied": str(self.applied),
            "disabled": _number_list(self.disabled & live),
            "binary": _number_list(self.binary & live),
            "replays": ",".join(f"{d}:{v}" for d, v in self.replays if v in live),
        }
        return {PREFIX + key: value for key, value in labels.items()}

    def after(self, number: int, intent: _Intent) -> _Labels:
        """The labels once version `number`, written with `intent`, is folded in."""
        labels = replace(self, applied=max(self.applied, number))
        if intent.binary:
            labels = replace(labels, binary=labels.binary | {number})
        if intent.replay:
            kept = (*labels.replays, (intent.replay, number))[-REPLAYS_KEPT:]
            labels = replace(labels, replays=kept)
        if intent.stage is Stage.PENDING:
            return replace(labels, pending=number)
        # A new current value also ends any half-finished rotation: its pending
        # version must not be promoted over this one later.
        return replace(labels.promoted(number), pending=None)

    def promoted(self, number: int) -> _Labels:
        if self.current == number:
            return self
        previous = self.current if self.current is not None else self.previous
        pending = None if self.pending == number else self.pending
        return replace(self, current=number, previous=previous, pending=pending)

    def stages_of(self, number: int) -> frozenset[Stage]:
        pointers = {
            Stage.CURRENT: self.current,
            Stage.PREVIOUS: self.previous,
            Stage.PENDING: self.pending,
        }
        return frozenset(stage for stage, at in pointers.items() if at == number)

    def replayed(self, digest: str) -> int | None:
        return next((v for d, v in reversed(self.replays) if d == digest), None)


@dataclass
class _Secret:
    """One secret's KV metadata with its labels brought up to date."""

    path: str
    latest: int
    entries: dict[int, _Entry]
    labels: _Labels
    custom: dict[str, str]
    updated_at: datetime | None
    metadata_version: int | None
    stale: bool = field(default=False)
    """Whether the stored labels lag behind `labels` (versions folded in)."""

    def live(self) -> list[int]:
        return sorted(
            number
            for number, entry in self.entries.items()
            if not entry.destroyed and entry.deleted_at is None
        )

    def info(self, number: int) -> VersionInfo:
        entry = self.entries[number]
        labels = self.labels
        enabled = number not in labels.disabled and number in self.live()
        return VersionInfo(
            str(number),
            entry.created_at,
            labels.stages_of(number),
            enabled,
            number in labels.binary,
        )


class VaultBackend:
    """Secret versions in one KV version 2 mount, below one path prefix."""

    def __init__(
        self,
        name: str,
        *,
        config: VaultConfig,
        clock: Clock,
        session: requests.Session | None = None,
        key: str | None = None,
    ) -> None:
        self.name = name
        self.max_value_bytes = config.max_value_bytes
        self._config = config
        self._clock = clock
        # Where this backend's options sit in the configuration, for messages.
        self._key = key or name
        self._vault = VaultSession(
            config.url,
            auth=config.auth,
            clock=clock,
            namespace=config.namespace,
            ca_cert=config.ca_cert,
            timeout=config.timeout,
            renew_before=config.renew_before,
            session=session,
            where=f"{self._key}.auth",
        )
        self._mount_checked = False
        self._mount_lock = threading.Lock()

    def __repr__(self) -> str:
        config = self._config
        return (
            f"VaultBackend(name={self.name!r}, url={config.url!r}, "
            f"mount={config.mount!r}, namespace={config.namespace!r})"
        )

    def read(
        self, path: str, *, version: str | None = None, stage: Stage | None = None
    ) -> SecretVersion:
        secret = self._load(path)
        number = _resolve(secret, version, stage)
        _check_readable(secret, number)

        data = self._version_data(path, number)
        value, intent = _decode(data)
        info = replace(secret.info(number), binary=intent.binary)
        return SecretVersion(path, info, value)

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
        if len(value) > self.max_value_bytes:
            raise PayloadTooLarge(
                f"the value is {len(value)} bytes; backend {self.name!r} takes at "
                f"most {self.max_value_bytes}"
            )
        replay = _digest(idempotency_key) if idempotency_key else None
        intent = _Intent(stage, binary, replay)
        payload = _encode(value, intent)

        for _attempt in range(ATTEMPTS):
            secret = self._load_or_none(path)
            if secret is not None and replay is not None:
                earlier = secret.labels.replayed(replay)
                if earlier is not None and earlier in secret.entries:
                    return secret.info(earlier)
            _check_expected(path, expected_version, secret)

            try:
                answer = self._vault.request(
                    "POST",
                    self._url("data", path),
                    json={
                        "options": {"cas": secret.latest if secret else 0},
                        "data": payload,
                    },
                )
            except PreconditionFailed:
                continue  # Another writer was first: decide again on its result.
            number = int(answer["data"]["version"])
            return self._settle(path, number, intent)
        raise BackendError(f"secret {path!r} is being written concurrently")

    def promote(self, path: str, version: str) -> VersionInfo:
        number = _parse_version(path, version)
        for _attempt in range(ATTEMPTS):
            secret = self._load(path)
            if number not in secret.entries:
                raise SecretNotFound(f"secret {path!r} has no version {number}")
            _check_readable(secret, number, disabled_ok=True)
            secret.labels = secret.labels.promoted(number)
            if self._save(secret):
                return secret.info(number)
        raise BackendError(f"secret {path!r} is being changed concurrently")

    def set_enabled(self, path: str, version: str, enabled: bool) -> None:
        number = _parse_version(path, version)
        for _attempt in range(ATTEMPTS):
            secret = self._load(path)
            entry = secret.entries.get(number)
            if entry is None:
                raise SecretNotFound(f"secret {path!r} has no version {number}")
            if entry.destroyed and enabled:
                raise VersionDestroyed(
                    f"version {number} of secret {path!r} was destroyed"
                )
            if enabled and entry.deleted_at is not None:
                self._vault.request(
                    "POST", self._url("undelete", path), json={"versions": [number]}
                )
            disabled = secret.labels.disabled
            disabled = disabled - {number} if enabled else disabled | {number}
            secret.labels = replace(secret.labels, disabled=disabled)
            # Label first, delete second: a crash in between leaves the version
            # refused by the broker, never readable by mistake.
            if not self._save(secret):
                continue
            if not enabled and not entry.destroyed and entry.deleted_at is None:
                self._vault.request(
                    "POST", self._url("delete", path), json={"versions": [number]}
                )
            return
        raise BackendError(f"secret {path!r} is being changed concurrently")

    def versions(self, path: str) -> list[VersionInfo]:
        secret = self._load(path)
        return [secret.info(number) for number in sorted(secret.entries)]

    def list(
        self, prefix: str, *, page_size: int, page_token: str | None = None
    ) -> SecretPage:
        if page_size < 1:
            raise InvalidRequest("page_size must be at least 1")
        _check_prefix(prefix)
        after = _decode_token(page_token)
        folder, _, stem = prefix.rpartition("/")
        walk = _Walk(after=after, limit=page_size + 1, budget=LIST_BUDGET)
        self._walk(walk, f"{folder}/" if folder else "", stem)

        items: list[SecretSummary] = []
        for path in walk.found[:page_size]:
            secret = self._load_or_none(path)
            if secret is not None:
                current = secret.labels.current
                version = None if current is None else str(current)
                items.append(SecretSummary(path, version, secret.updated_at))
        returned = walk.found[:page_size]
        if walk.cut and not returned:
            raise BackendError(f"listing {prefix!r} needs too many folder reads")
        more = len(walk.found) > page_size or walk.cut
        return SecretPage(items, _encode_token(returned[-1]) if more else None)

    def check(self) -> None:
        self.check_mount()
        self._vault.request("GET", "auth/token/lookup-self")

    def close(self) -> None:
        self._vault.close()

    # Reading and keeping the labels.

    def _load_or_none(self, path: str) -> _Secret | None:
        try:
            return self._load(path)
        except SecretNotFound:
            return None

    def _load(self, path: str, known: Mapping[int, _Intent] | None = None) -> _Secret:
        """The secret's metadata, with versions newer than its labels folded in."""
        try:
            answer = self._vault.request("GET", self._url("metadata", path))
        except SecretNotFound:
            raise SecretNotFound(f"secret {path!r} does not exist") from None
        data = answer.get("data") or {}
        custom = dict(data.get("custom_metadata") or {})
        now = utc(self._clock.now())
        entries = {
            int(number): _Entry(
                _timestamp(entry.get("created_time")) or utc(0),
                # With delete_version_after, KV shows when a version *will* go.
                _past(_timestamp(entry.get("deletion_time")), now),
                bool(entry.get("destroyed")),
            )
            for number, entry in (data.get("versions") or {}).items()
        }
        metadata_version = data.get("current_metadata_version")
        secret = _Secret(
            path,
            int(data.get("current_version") or 0),
            entries,
            _Labels.parse(custom),
            custom,
            _timestamp(data.get("updated_time")),
            metadata_version if isinstance(metadata_version, int) else None,
        )
        self._fold(secret, known or {})
        return secret

    def _fold(self, secret: _Secret, known: Mapping[int, _Intent]) -> None:
        unapplied = [n for n in secret.live() if n > secret.labels.applied]
        # TODO: store labels on read too; until then a secret written only
        # outside the broker costs up to FOLD_LIMIT extra data reads per read,
        # which is slower but never wrong.
        labels = secret.labels
        for number in unapplied[-FOLD_LIMIT:]:
            intent = known.get(number)
            if intent is None:
                try:
                    intent = _decode(self._version_data(secret.path, number))[1]
                except (SecretNotFound, VersionDeleted, VersionDestroyed):
                    continue  # Deleted since the metadata was read.
            labels = labels.after(number, intent)
        labels = replace(labels, applied=max(labels.applied, secret.latest))
        secret.stale = labels != secret.labels
        secret.labels = labels

    def _settle(self, path: str, number: int, intent: _Intent) -> VersionInfo:
        """Record version `number`'s labels after its data write; answer it."""
        secret = self._load(path, known={number: intent})
        for _attempt in range(ATTEMPTS):
            if not secret.stale or self._save(secret):
                break
            secret = self._load(path, known={number: intent})
        else:
            # The labels catch up on the next read that folds this version in.
            log.warning("vault.labels_behind", backend=self.name, version=number)
        return secret.info(number)

    def _save(self, secret: _Secret) -> bool:
        """Store the labels; False when metadata check-and-set says they moved."""
        live = set(secret.entries)
        custom = {k: v for k, v in secret.custom.items() if not k.startswith(PREFIX)}
        custom.update(
            (key, value) for key, value in secret.labels.render(live).items() if value
        )
        body: dict[str, Any] = {"custom_metadata": custom}
        # TODO: HashiCorp Vault has no metadata check-and-set, so on it two
        # promote or set_enabled calls on one secret are last-writer-wins; the
        # rotation engine must not run two rotations of one secret at once.
        if secret.metadata_version is not None:
            body["metadata_cas"] = secret.metadata_version
        try:
            self._vault.request("POST", self._url("metadata", secret.path), json=body)
        except PreconditionFailed:
            return False
        return True

    def _version_data(self, path: str, number: int) -> dict[str, Any]:
        answer = self._vault.request(
            "GET", self._url("data", path), params={"version": str(number)}
        )
        data = (answer.get("data") or {}).get("data")
        if not isinstance(data, dict):
            raise SecretNotFound(f"secret {path!r} has no version {number}")
        return data

    # URLs and mounts.

    def _url(self, kind: str, path: str) -> str:
        self.check_mount()
        if kind != "metadata" or not (path == "" or path.endswith("/")):
            _check_path(path)
        full = quote(self._config.path_prefix + path, safe="/")
        return f"{quote(self._config.mount, safe='/')}/{kind}/{full}"

    def check_mount(self) -> None:
        """Make sure `mount` is exactly a KV version 2 mount of this server.

        Raises BackendMisconfigured naming the configuration key when it is
        not, or the session's error when the server cannot tell. Only success
        is remembered: a mount fixed on the server (`kv enable-versioning`)
        serves without a restart.
        """
        if self._mount_checked:
            return
        with self._mount_lock:
            if self._mount_checked:
                return
            mount = self._config.mount
            try:
                answer = self._vault.request("GET", f"sys/internal/ui/mounts/{mount}")
            except BackendUnauthorized as refused:
                self._refused_mount(mount, refused)
            problem = _mount_problem(mount, answer.get("data") or {})
            if problem is not None:
                message, detail = problem
                log.error(
                    "vault.mount_refused",
                    backend=self.name,
                    key=self._key,
                    mount=mount,
                    reason=detail,
                )
                raise BackendMisconfigured(
                    f"{self._key}.mount {message}", detail=detail
                )
            self._mount_checked = True

    def _refused_mount(self, mount: str, refused: BackendUnauthorized) -> NoReturn:
        """Vault answers 403 alike for a mount that does not exist and for one
        the broker's token may not use; `sys/mounts`, when the token may read
        it, tells which. Raises BackendMisconfigured, or BackendUnauthorized
        whose detail says to check the mount's name too."""
        try:
            listed = self._vault.request("GET", "sys/mounts")
        except BackendUnauthorized:
            raise BackendUnauthorized(
                refused.message,
                detail=f"{refused.detail}; vault refuses a mount that does not "
                f"exist as it refuses a token: check that {self._key}.mount names "
                f"a mount of the server ({mount!r}) as well as the token's policy",
            ) from refused
        mounts = {str(path).strip("/") for path in listed.get("data") or {}}
        if any(mount == path or mount.startswith(f"{path}/") for path in mounts):
            raise refused
        detail = f"no mount is named {mount!r}"
        log.error("vault.mount_refused", backend=self.name, key=self._key,
                  mount=mount, reason=detail)  # fmt: skip
        raise BackendMisconfigured(
            f"{self._key}.mount names no mount of the vault server", detail=detail
        ) from refused

    def _walk(self, walk: _Walk, folder: str, stem: str) -> None:
        """Depth first, keys sorted: paths come out in code point order."""
        if walk.done():
            return
        walk.budget -= 1
        try:
            answer = self._vault.request(
                "GET", self._url("metadata", folder), params={"list": "true"}
            )
        except SecretNotFound:
            return
        keys = sorted(str(key) for key in (answer.get("data") or {}).get("keys", []))
        for key in keys:
            if not key.startswith(stem):
                continue
            path = folder + key
            after = walk.after
            if key.endswith("/"):
                if after is None or path > after or after.startswith(path):
                    self._walk(walk, path, "")
            elif after is None or path > after:
                walk.found.append(path)
            if walk.done():
                return


@dataclass
class _Walk:
    """The state of one listing: where it resumes, what it found, what is left."""

    after: str | None
    limit: int
    budget: int
    found: list[str] = field(default_factory=list)

    @property
    def cut(self) -> bool:
        return self.budget <= 0

    def done(self) -> bool:
        return len(self.found) >= self.limit or self.cut


def _check_path(path: str) -> None:
    try:
        _check_segments(path)
        _check_no_kv_subpath(path)
    except ValueError as error:
        raise InvalidRequest(f"vault path {path!r}: {error}") from None


def _check_prefix(prefix: str) -> None:
    folders = prefix.split("/")[:-1]
    try:
        if folders:
            _check_segments("/".join(folders))
            _check_no_kv_subpath(prefix)
        if "\x00" in prefix:
            raise ValueError("control characters are not allowed")
    except ValueError as error:
        raise InvalidRequest(f"vault prefix {prefix!r}: {error}") from None


def _mount_problem(mount: str, data: Mapping[str, Any]) -> tuple[str, str] | None:
    """What is wrong with `mount` by the server's account of it, if anything:
    a message that names no path inside the server, and the operator's detail.
    """
    found = str(data.get("path", "")).strip("/")
    kind = data.get("type")
    version = str((data.get("options") or {}).get("version", "1"))
    if not found:
        return "names no mount of the vault server", f"no mount is named {mount!r}"
    if found != mount:
        rest = mount.removeprefix(found).strip("/")
        return (
            "names a folder inside another mount; set mount to that mount and "
            "put the rest in path_prefix",
            f"{mount!r} lies inside the mount {found!r}; set mount: {found} "
            f"and path_prefix: {rest}/",
        )
    if kind not in ("kv", "generic") or version != "2":
        return (
            "names a KV version 1 mount, or one of another type; the broker needs "
            "KV version 2 for versions and stages",
            f"mount {mount!r} is type {kind}, version {version}; upgrade a KV "
            f"mount in place with `vault kv enable-versioning {mount}`, or name a "
            "KV version 2 mount",
        )
    return None


def _resolve(secret: _Secret, version: str | None, stage: Stage | None) -> int:
    if version is not None:
        return _parse_version(secret.path, version)
    labels = secret.labels
    pointer = {
        None: labels.current,
        Stage.CURRENT: labels.current,
        Stage.PREVIOUS: labels.previous,
        Stage.PENDING: labels.pending,
    }[stage]
    if pointer is None:
        label = (stage or Stage.CURRENT).value
        raise SecretNotFound(f"secret {secret.path!r} has no {label} version")
    return pointer


def _check_readable(secret: _Secret, number: int, *, disabled_ok: bool = False) -> None:
    """Raise the reason version `number` cannot be read (case C21)."""
    path = secret.path
    entry = secret.entries.get(number)
    if entry is None:
        reason = "no longer kept" if 0 < number <= secret.latest else "no"
        raise SecretNotFound(f"secret {path!r} has {reason} version {number}")
    if number in secret.labels.disabled and not disabled_ok:
        raise VersionDisabled(f"version {number} of secret {path!r} is disabled")
    if entry.destroyed:
        raise VersionDestroyed(f"version {number} of secret {path!r} was destroyed")
    if entry.deleted_at is not None:
        live = ", ".join(str(n) for n in secret.live()) or "none"
        raise VersionDeleted(
            f"version {number} of secret {path!r} was deleted at "
            f"{entry.deleted_at.isoformat()} and can be undeleted; live versions: "
            f"{live}"
        )


def _check_expected(
    path: str, expected: str | _Absent | None, secret: _Secret | None
) -> None:
    if expected is None:
        return
    current = secret.labels.current if secret else None
    if expected is ABSENT:
        if secret is None or secret.latest == 0:
            return
        number = current or secret.latest
        entry = secret.entries.get(number)
        if entry is not None and entry.deleted_at is not None:
            # Case C05b: not "absent" and not a stale base either; say which.
            raise Conflict(
                f"secret {path!r} exists (latest version deleted), current version "
                f"{number}: undelete it, or write with If-Match {number}"
            )
        raise PreconditionFailed(
            f"secret {path!r} already exists; current version {number}"
        )
    if secret is None:
        raise PreconditionFailed(f"secret {path!r} does not exist; no version matches")
    if current is None or expected != str(current):
        raise PreconditionFailed(
            f"secret {path!r} is at version {current}, not the one expected"
        )


def _parse_version(path: str, version: str) -> int:
    # Only the digits a version was written as name it: not "02", and not
    # digits of other scripts, which int() would read as the same number.
    if not _VERSION_NUMBER.fullmatch(version) or int(version) >= 2**31:
        raise SecretNotFound(f"secret {path!r} has no such version")
    return int(version)


def _encode(value: Sensitive, intent: _Intent) -> dict[str, Any]:
    """KV data for a value: text as is when it can be, base64 otherwise (C25)."""
    marker: dict[str, Any] = {"stage": intent.stage.value, "binary": intent.binary}
    if intent.replay:
        marker["replay"] = intent.replay
    raw = value.reveal()
    if not intent.binary:
        try:
            return {"value": raw.decode("utf-8"), "tokenbroker": marker}
        except UnicodeDecodeError:
            pass
    encoded = base64.b64encode(raw).decode("ascii")
    return {"value": encoded, "encoding": "base64", "tokenbroker": marker}


def _decode(data: Mapping[str, Any]) -> tuple[Sensitive, _Intent]:
    """The value and the writer's intent; data written outside the broker is
    taken as a new current version: its `value` field, or the whole JSON."""
    marker = data.get("tokenbroker")
    value = data.get("value")
    if not isinstance(marker, dict) or not isinstance(value, str):
        if set(data) == {"value"} and isinstance(value, str):
            return Sensitive(value.encode()), _Intent(Stage.CURRENT, False, None)
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return Sensitive(text.encode()), _Intent(Stage.CURRENT, False, None)
    stage = Stage.PENDING if marker.get("stage") == "pending" else Stage.CURRENT
    replay = marker.get("replay")
    intent = _Intent(
        stage, bool(marker.get("binary")), replay if isinstance(replay, str) else None
    )
    if data.get("encoding") == "base64":
        try:
            return Sensitive(base64.b64decode(value, validate=True)), intent
        except binascii.Error:
            raise BackendError("a stored value is not valid base64") from None
    return Sensitive(value.encode()), intent


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _timestamp(raw: object) -> datetime | None:
    if not isinstance(raw, str) or not raw:
        return None
    # Vault writes nanoseconds; Python 3.11 reads at most microseconds.
    raw = re.sub(r"(\.\d{6})\d+", r"\1", raw)
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        return None


def _past(moment: datetime | None, now: datetime) -> datetime | None:
    return moment if moment is not None and moment <= now else None


def _text(number: int | None) -> str:
    return "" if number is None else str(number)


def _number_list(numbers: frozenset[int]) -> str:
    """Comma-separated, newest kept first when Vault's value limit is reached."""
    text = ""
    for number in sorted(numbers, reverse=True):
        longer = f"{number},{text}" if text else str(number)
        if len(longer) > LABEL_BYTES:
            break
        text = longer
    return text


def _encode_token(path: str) -> str:
    return base64.urlsafe_b64encode(path.encode()).decode().rstrip("=")


def _decode_token(token: str | None) -> str | None:
    if not token:
        return None
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidRequest("page_token is not one this broker issued") from None


Config = VaultConfig


def create(name: str, config: VaultConfig, context: BackendContext) -> VaultBackend:
    """The registry's entry point; refuses to start without a usable credential."""
    key = f"environments.{context.env}.backends.{name}"
    check_credentials(config.auth, f"{key}.auth")
    backend = VaultBackend(name, config=config, clock=context.clock, key=key)
    try:
        backend.check_mount()
    except BackendMisconfigured as error:
        backend.close()
        raise ConfigurationError(f"{error.message} ({error.detail})") from None
    except BackendError as error:
        # A server that is down, or refuses the broker for now, must not keep
        # the other backends and environments from starting: first use checks
        # again, and /readyz reports it meanwhile.
        log.warning(
            "vault.mount_check_deferred",
            backend=name,
            env=context.env,
            error=error.code,
            reason=error.detail or error.message,
        )
    return backend
