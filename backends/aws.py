"""The `aws` backend: AWS Secrets Manager through boto3.

A path is a secret name under the configured `name_prefix` (which ends in `/`,
so `app/` never reaches `app-prod/`). Stages are the native staging labels
AWSCURRENT, AWSPREVIOUS and AWSPENDING; versions are the AWS version ids, which
are our own `ClientRequestToken`s. Reads always name the stage or the version:
an unnamed read answers whatever the store calls its default version, which
lags behind label moves on emulators.

This module holds the registry's entry points and the protocol's methods. The
rest of the backend lives beside it:

    aws_stages   label moves: writing current, compare-and-set, disabling
    aws_errors   botocore failures translated into `service.errors`
    aws_client   the configuration and the boto3 client built from it:
                 credentials, assumed role, retries, logging

Names tests and other modules import from here are re-exported in `__all__`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import structlog

from backends.aws_client import AWS_LIMIT_BYTES, AwsConfig, make_client
from backends.aws_errors import (
    BOTOCORE_ERRORS,
    ERROR_CODES,
    AwsFailure,
    summarize,
    translate,
)
from backends.aws_stages import (
    DISABLED_TAG,
    LABELS,
    MAX_PAGE,
    PRUNE_TAGS_AT,
    STAGED,
    STAGES,
    WRITE_ATTEMPTS,
    AwsStages,
    cas_version_ids,
    keyed_version_id,
    stages_of,
)
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
from service.clock import Clock
from service.errors import (
    BackendError,
    Conflict,
    InvalidRequest,
    PayloadTooLarge,
    SecretNotFound,
    Throttled,
    VersionDeleted,
    VersionDisabled,
)
from service.sensitive import Sensitive

__all__ = [
    "BOTOCORE_ERRORS",
    "DISABLED_TAG",
    "ERROR_CODES",
    "PRUNE_TAGS_AT",
    "STAGED",
    "AwsBackend",
    "AwsConfig",
    "AwsFailure",
    "Config",
    "cas_version_ids",
    "connect",
    "create",
    "make_client",
    "summarize",
    "translate",
]

log = structlog.get_logger(__name__)

SEEN_TOKENS: Final = 16
_NAME: Final = re.compile(r"[A-Za-z0-9/_+=.@-]{1,512}")


class AwsBackend(AwsStages):
    """Secrets in AWS Secrets Manager, through one thread-safe botocore client."""

    def __init__(
        self,
        name: str,
        *,
        client: Any,
        clock: Clock,
        name_prefix: str = "",
        max_value_bytes: int = AWS_LIMIT_BYTES,
        abandoned_after: float = 60.0,
    ) -> None:
        self.name = name
        self.max_value_bytes = max_value_bytes
        self._client = client
        self._clock = clock
        self._prefix = name_prefix
        self._abandoned_after = abandoned_after

    def __repr__(self) -> str:
        region = self._client.meta.region_name
        return (
            f"AwsBackend(name={self.name!r}, region={region!r}, "
            f"prefix={self._prefix!r})"
        )

    def read(
        self, path: str, *, version: str | None = None, stage: Stage | None = None
    ) -> SecretVersion:
        name = self._name(path)
        if version is None:
            wanted = f"{(stage or Stage.CURRENT).value} version"
            where = {"VersionStage": LABELS[stage or Stage.CURRENT]}
        else:
            wanted = "such version"
            where = {"VersionId": _version_id(path, version)}
        try:
            response = self._get(path, name, wanted, **where)
        except SecretNotFound:
            if version is None and stage not in (None, Stage.CURRENT):
                assert stage is not None
                if self._stage_disabled(path, name, stage):
                    raise VersionDisabled(
                        f"the {stage.value} version of secret {path!r} is disabled"
                    ) from None
            raise

        info = self._info(path, name, response)
        if stage is not None and stage not in info.stages:
            raise SecretNotFound(f"secret {path!r} has no {stage.value} version")
        if not info.enabled:
            raise VersionDisabled(
                f"version {info.version} of secret {path!r} is disabled"
            )
        log.debug("aws.secret.read", backend=self.name, path=path, version=info.version)
        return SecretVersion(path, info, Sensitive(_value(response)))

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
        payload = _payload(path, value, binary, self.max_value_bytes)

        try:
            info = self._write(path, name, payload, expected_version, stage,
                               idempotency_key)  # fmt: skip
        except VersionDeleted as deleted:
            # The name is held until AWS deletes it for good (cases C05b, C19):
            # a conflict with the store's state, like Azure's soft delete.
            raise Conflict(
                f"secret {path!r} exists in AWS Secrets Manager, scheduled for "
                "deletion: restore it to write to it"
            ) from deleted
        log.info(
            "aws.secret.written",
            backend=self.name,
            path=path,
            version=info.version,
            stage=stage.value,
            conditional=expected_version is not None,
        )
        return info

    def _write(
        self,
        path: str,
        name: str,
        payload: dict[str, str | bytes],
        expected_version: str | _Absent | None,
        stage: Stage,
        idempotency_key: str | None,
    ) -> VersionInfo:
        keyed = None
        if idempotency_key is not None:
            keyed = keyed_version_id(name, idempotency_key)
            earlier = self._earlier(path, name, keyed)
            if earlier is not None:
                return earlier

        if expected_version is ABSENT:
            return self._create(path, name, payload, keyed, stage)
        if stage is Stage.PENDING:
            return self._write_pending(path, name, payload, expected_version, keyed)
        if isinstance(expected_version, str):
            return self._compare_and_set(path, name, payload, expected_version, keyed)
        return self._write_current(path, name, payload, keyed)

    def promote(self, path: str, version: str) -> VersionInfo:
        name = self._name(path)
        response = self._get(path, name, VersionId=_version_id(path, version))
        for _attempt in range(WRITE_ATTEMPTS):
            state = self._describe(path, name)
            if version in state.disabled:
                raise VersionDisabled(
                    f"version {version} of secret {path!r} is disabled; enable it first"
                )
            if self._move_current(path, name, version, state.current):
                break
        else:
            raise Conflict(f"secret {path!r} is being written concurrently; try again")
        if "AWSPENDING" in state.labels.get(version, ()):
            self._relabel(path, name, "AWSPENDING", away=version)

        log.info("aws.secret.promoted", backend=self.name, path=path, version=version)
        stages = frozenset({Stage.CURRENT})
        return VersionInfo(
            version, response["CreatedDate"], stages, True, _binary(response)
        )

    def set_enabled(self, path: str, version: str, enabled: bool) -> None:
        name = self._name(path)
        state = self._describe(path, name)
        labels = state.labels.get(_version_id(path, version))
        if labels is None and version not in self._version_ids(path, name):
            raise SecretNotFound(f"secret {path!r} has no such version")
        tag = DISABLED_TAG + version

        if enabled:
            if version in state.disabled:
                self._call("untag_resource", path, SecretId=name, TagKeys=[tag])
        elif "AWSCURRENT" in (labels or ()):
            raise Conflict(
                f"version {version} of secret {path!r} is current; AWS cannot disable "
                "the current version, so write or promote another one first"
            )
        else:
            if len(state.disabled) >= PRUNE_TAGS_AT:
                self._prune_disabled_tags(path, name, state.disabled)
            # The value names the stages the version held, so that a read of
            # one of them answers "disabled" rather than "no such stage".
            held = " ".join(sorted(label for label in labels or () if label in STAGES))
            tags = [{"Key": tag, "Value": held or "true"}]
            self._call("tag_resource", path, SecretId=name, Tags=tags)
            for label in sorted(labels or ()):
                self._relabel(path, name, label, away=version)
        log.info(
            "aws.version.enabled" if enabled else "aws.version.disabled",
            backend=self.name,
            path=path,
            version=version,
        )

    def versions(self, path: str) -> list[VersionInfo]:
        name = self._name(path)
        state = self._describe(path, name)
        entries = sorted(
            self._version_entries(path, name), key=lambda entry: entry["CreatedDate"]
        )
        # TODO: `binary` is False here: ListSecretVersionIds does not say which
        # versions hold SecretBinary, and fetching every value to find out would
        # read secrets nobody asked for; reads report it correctly.
        return [
            VersionInfo(
                entry["VersionId"],
                entry["CreatedDate"],
                stages_of(entry.get("VersionStages", ())),
                enabled=entry["VersionId"] not in state.disabled,
            )
            for entry in entries
        ]

    def list(
        self, prefix: str, *, page_size: int, page_token: str | None = None
    ) -> SecretPage:
        if page_size < 1:
            raise InvalidRequest("page_size must be at least 1")
        full = self._prefix + prefix
        if full and not _NAME.fullmatch(full):
            return SecretPage([], None)
        aws_token, seen = _decode_page_token(page_token, full)
        params: dict[str, Any] = {"MaxResults": min(page_size, MAX_PAGE)}
        if full:
            # AWS name filters are case-insensitive prefix matches and emulators
            # have applied "contains"; the exact test below is the one that counts.
            params["Filters"] = [{"Key": "name", "Values": [full]}]
        if aws_token:
            params["NextToken"] = aws_token
        response = self._call("list_secrets", prefix, **params)

        items = [
            _summary(entry, len(self._prefix))
            for entry in response.get("SecretList", ())
            if entry["Name"].startswith(full)
        ]
        next_token = response.get("NextToken") or None
        if next_token is None:
            return SecretPage(items, None)
        digest = _digest(next_token)
        if digest in seen:
            log.warning("aws.listing.looped", backend=self.name, prefix=prefix)
            raise BackendError(
                "AWS Secrets Manager repeated a continuation token while listing "
                f"{prefix!r}; the listing was stopped instead of looping"
            )
        seen = [*seen, digest][-SEEN_TOKENS:]
        return SecretPage(items, _encode_page_token(full, next_token, seen))

    def check(self) -> None:
        try:
            self._call("list_secrets", None, MaxResults=1)
        except Throttled:
            # An answer, even "slow down", proves the store is reachable; calling
            # a throttled store unready would only move its load elsewhere.
            return

    def close(self) -> None:
        self._client.close()

    def _earlier(self, path: str, name: str, version: str) -> VersionInfo | None:
        """The version an earlier write with the same idempotency key made."""
        try:
            response = self._get(path, name, VersionId=version)
        except SecretNotFound:
            return None
        return self._info(path, name, response)

    def _info(self, path: str, name: str, response: Mapping[str, Any]) -> VersionInfo:
        version = response["VersionId"]
        stages = stages_of(response.get("VersionStages", ()))
        # Only an unlabelled version can be disabled; labelled ones need no look-up.
        enabled = bool(stages) or version not in self._describe(path, name).disabled
        created: datetime = response["CreatedDate"]
        return VersionInfo(version, created, stages, enabled, _binary(response))

    def _name(self, path: str) -> str:
        name = self._prefix + path
        if not _NAME.fullmatch(name):
            raise InvalidRequest(
                f"secret path {path!r} is not a valid AWS secret name: use letters, "
                "digits and /_+=.@- only, at most 512 characters with the prefix"
            )
        return name


def connect(
    name: str, config: AwsConfig, *, clock: Clock, session: Any = None
) -> AwsBackend:
    """An `AwsBackend` for `config`; tests pass a session with fake keys."""
    return AwsBackend(
        name,
        client=make_client(config, session),
        clock=clock,
        name_prefix=config.name_prefix,
        max_value_bytes=config.max_value_bytes,
    )


def _version_id(path: str, version: str) -> str:
    if not 32 <= len(version) <= 64:
        raise SecretNotFound(f"secret {path!r} has no such version")
    return version


def _payload(
    path: str, value: Sensitive, binary: bool, limit: int
) -> dict[str, str | bytes]:
    """The SecretString or SecretBinary argument; refuses oversized values first."""
    size = len(value)
    if size > limit:
        raise PayloadTooLarge(
            f"the value for secret {path!r} is {size} bytes; the limit is {limit} bytes"
        )
    if binary:
        return {"SecretBinary": value.reveal()}
    try:
        return {"SecretString": value.reveal_text()}
    except UnicodeDecodeError:
        raise InvalidRequest(
            f"the value for secret {path!r} is not UTF-8 text; store it as binary"
        ) from None


def _value(response: Mapping[str, Any]) -> bytes:
    if "SecretBinary" in response:
        # botocore already decoded the wire's base64: these are the stored bytes.
        data: bytes = response["SecretBinary"]
        return data
    text: str = response["SecretString"]
    return text.encode("utf-8")


def _binary(response: Mapping[str, Any]) -> bool:
    return "SecretBinary" in response


def _summary(entry: Mapping[str, Any], cut: int) -> SecretSummary:
    versions = entry.get("SecretVersionsToStages", {})
    current = next((v for v, ls in versions.items() if "AWSCURRENT" in ls), None)
    return SecretSummary(entry["Name"][cut:], current, entry.get("LastChangedDate"))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def _encode_page_token(full: str, aws_token: str, seen: list[str]) -> str:
    state = {"p": _digest(full), "t": aws_token, "s": seen}
    raw = json.dumps(state, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_page_token(token: str | None, full: str) -> tuple[str | None, list[str]]:
    if not token:
        return None, []
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        state = json.loads(raw)
        aws_token, seen, listing = state["t"], state["s"], state["p"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise InvalidRequest("page_token is not one this broker issued") from None
    if listing != _digest(full) or not isinstance(aws_token, str):
        raise InvalidRequest("page_token belongs to another listing")
    return aws_token, [str(item) for item in seen][-SEEN_TOKENS:]


Config = AwsConfig


def create(name: str, config: AwsConfig, context: BackendContext) -> AwsBackend:
    """The registry's entry point: credentials from the default boto3 chain."""
    return connect(name, config, clock=context.clock)
