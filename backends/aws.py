"""The `aws` backend: AWS Secrets Manager through boto3.

A path is a secret name under the configured `name_prefix` (which ends in `/`,
so `app/` never reaches `app-prod/`). Stages are the native staging labels
AWSCURRENT, AWSPREVIOUS and AWSPENDING; versions are the AWS version ids, which
are our own `ClientRequestToken`s. Reads always name the stage or the version:
an unnamed read answers whatever the store calls its default version, which
lags behind label moves on emulators.

Writing current. A new version is first put with the scratch label TBSTAGED (a
put needs a label, and without one AWS would attach AWSCURRENT at once), then
swapped in with `UpdateSecretVersionStage(AWSCURRENT, MoveToVersionId=new,
RemoveFromVersionId=old)`. AWS fails that call unless `old` still holds
AWSCURRENT, so it is an atomic conditional swap, and it moves AWSPREVIOUS to
`old` in the same step. A plain write retries the swap on top of whoever won; a
compare-and-set gives up with PreconditionFailed. Either clears a stray
AWSPENDING, so a half-finished rotation cannot later promote over it.

Compare-and-set. AWS has no conditional put: two writers on one base could each
create a version and only one win the swap. So a compare-and-set without an
idempotency key uses a version id derived from (secret, expected version); the
second writer's put collides with the first one's version and AWS refuses it
(ResourceExists) before anything is created. Should the first writer die between
put and swap, its version blocks the base until it is `abandoned_after` seconds
old by the server's clock; the next writer then moves on to the next derived
id. A compare-and-set that loses its swap to a plain write removes its scratch
label, so nothing labelled dangles (AWS purges unlabelled versions in time). A
pending write checks its expected version first, not atomically: a pending
version changes no reader. AWS makes a secret's first version current, even one
written as pending.

Disabling. AWS cannot disable one version. Disabling takes every staging label
off the version, so no stage reaches it, and records it in the secret's tag
`tokenbroker:disabled:<version>`; a read by id of an unlabelled version checks
the tags and answers VersionDisabled. Enabling removes the tag; the labels stay
off. The current version cannot be disabled (AWS cannot take AWSCURRENT off
without moving it): write or promote another one first.

Throttling is botocore's "standard" retry mode: exponential backoff with full
jitter, `x-amz-retry-after` honoured, at most `max_attempts` tries per call and a
client-wide retry quota against retry storms; then the broker answers Throttled.
Errors are translated in `translate` only, from the error code and the path;
botocore's own text can echo request parameters and is never quoted, and its
DEBUG logs of request and response bodies are filtered out.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Final, Literal

import boto3  # type: ignore[import-untyped]
import botocore.exceptions as boto  # type: ignore[import-untyped]
import botocore.session  # type: ignore[import-untyped]
import structlog
from botocore.config import Config as BotoConfig  # type: ignore[import-untyped]
from botocore.credentials import (  # type: ignore[import-untyped]
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    DeferredRefreshableCredentials,
)
from pydantic import BaseModel, ConfigDict, Field, model_validator

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
from service.clock import Clock, utc
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
    VersionDeleted,
    VersionDisabled,
)
from service.sensitive import Sensitive

log = structlog.get_logger(__name__)

AWS_LIMIT_BYTES: Final = 65536
LABELS: Final[Mapping[Stage, str]] = {
    Stage.CURRENT: "AWSCURRENT",
    Stage.PREVIOUS: "AWSPREVIOUS",
    Stage.PENDING: "AWSPENDING",
}
STAGES: Final = {label: stage for stage, label in LABELS.items()}
STAGED: Final = "TBSTAGED"
DISABLED_TAG: Final = "tokenbroker:disabled:"
PRUNE_TAGS_AT: Final = 40
WRITE_ATTEMPTS: Final = 5
CAS_GENERATIONS: Final = 3
MAX_PAGE: Final = 100
SEEN_TOKENS: Final = 16
_TOKENS: Final = uuid.UUID("5b0c3d0e-8f64-4c4e-9a53-4a3c0f1d2e71")
_NAME: Final = re.compile(r"[A-Za-z0-9/_+=.@-]{1,512}")
_CODE: Final = re.compile(r"[A-Za-z][A-Za-z0-9.]{0,63}")


class AwsConfig(BaseModel):
    """`{type: aws, region: ...}`; credentials come from the default chain."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["aws"]
    region: str = Field(min_length=1)
    endpoint_url: str | None = Field(default=None, pattern=r"^https?://")
    sts_endpoint_url: str | None = Field(default=None, pattern=r"^https?://")
    role_arn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:iam::")
    external_id: str | None = Field(default=None, min_length=2, max_length=1224)
    role_session_name: str = Field(default="tokenbroker", pattern=r"^[\w+=,.@-]{2,64}$")
    name_prefix: str = Field(default="", pattern=r"^([A-Za-z0-9/_+=.@-]*/)?$")
    max_value_bytes: int = Field(default=AWS_LIMIT_BYTES, ge=1, le=AWS_LIMIT_BYTES)
    max_attempts: int = Field(default=5, ge=1, le=10)
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _external_id_needs_role(self) -> AwsConfig:
        if self.external_id is not None and self.role_arn is None:
            raise ValueError("external_id is only used with role_arn")
        return self


class AwsFailure(Exception):
    """What botocore reported, minus its message, which can echo parameters."""


@dataclass(frozen=True)
class _State:
    """One DescribeSecret answer: labels per version, current and disabled ids."""

    labels: Mapping[str, frozenset[str]]
    disabled: frozenset[str]
    current: str | None = field(init=False)

    def __post_init__(self) -> None:
        holders = [v for v, labels in self.labels.items() if "AWSCURRENT" in labels]
        object.__setattr__(self, "current", holders[0] if holders else None)


class AwsBackend:
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
        response = self._get(path, name, wanted, **where)

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

        keyed = None
        if idempotency_key is not None:
            keyed = str(uuid.uuid5(_TOKENS, f"key\0{name}\0{idempotency_key}"))
            earlier = self._earlier(path, name, keyed)
            if earlier is not None:
                return earlier

        if expected_version is ABSENT:
            info = self._create(path, name, payload, keyed, stage)
        elif stage is Stage.PENDING:
            info = self._write_pending(path, name, payload, expected_version, keyed)
        elif isinstance(expected_version, str):
            info = self._compare_and_set(path, name, payload, expected_version, keyed)
        else:
            info = self._write_current(path, name, payload, keyed)
        log.info(
            "aws.secret.written",
            backend=self.name,
            path=path,
            version=info.version,
            stage=stage.value,
            conditional=expected_version is not None,
        )
        return info

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
            tags = [{"Key": tag, "Value": "true"}]
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
                _stages(entry.get("VersionStages", ())),
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

    def _create(
        self,
        path: str,
        name: str,
        payload: Mapping[str, Any],
        token: str | None,
        stage: Stage,
    ) -> VersionInfo:
        """The first version; AWS makes a secret's first version current, always."""
        version = token or str(uuid.uuid4())
        params = {"Name": name, "ClientRequestToken": version, **payload}
        try:
            self._call("create_secret", path, **params)
        except PreconditionFailed:
            state = self._describe(path, name)
            raise PreconditionFailed(
                f"secret {path!r} already exists; current version {state.current}"
            ) from None
        stages = {Stage.CURRENT}
        if stage is Stage.PENDING:
            self._relabel(path, name, "AWSPENDING", to=version)
            stages.add(Stage.PENDING)
        return self._new(version, stages, payload)

    def _write_current(
        self, path: str, name: str, payload: Mapping[str, Any], token: str | None
    ) -> VersionInfo:
        """A new current version on top of whatever is current when it lands."""
        version = token or str(uuid.uuid4())
        for _attempt in range(WRITE_ATTEMPTS):
            try:
                state = self._describe(path, name)
            except SecretNotFound:
                try:
                    return self._create(path, name, payload, version, Stage.CURRENT)
                except PreconditionFailed:
                    continue
            self._put(path, name, version, payload, STAGED)
            if self._move_current(path, name, version, state.current):
                self._end_rotation(path, name, state)
                return self._new(version, {Stage.CURRENT}, payload)
        raise Conflict(f"secret {path!r} is being written concurrently; try again")

    def _compare_and_set(
        self,
        path: str,
        name: str,
        payload: Mapping[str, Any],
        expected: str,
        token: str | None,
    ) -> VersionInfo:
        """A new current version only if `expected` is still current."""
        state = self._expect(path, name, expected)
        candidates = [token] if token else cas_version_ids(name, expected)
        for version in candidates:
            try:
                self._put(path, name, version, payload, STAGED)
            except PreconditionFailed:
                if token or not self._abandoned(path, name, version, expected):
                    raise PreconditionFailed(
                        f"secret {path!r}: another write on version {expected} "
                        "won or is in progress"
                    ) from None
                log.warning("aws.cas.abandoned", backend=self.name, path=path)
                continue
            if self._move_current(path, name, version, expected):
                self._end_rotation(path, name, state)
                return self._new(version, {Stage.CURRENT}, payload)
            self._relabel(path, name, STAGED, away=version)
            now = self._describe(path, name).current
            raise PreconditionFailed(
                f"secret {path!r} is at version {now}, not {expected}"
            )
        raise Conflict(
            f"secret {path!r}: earlier writes on version {expected} were abandoned; "
            "write without a precondition to move on"
        )

    def _write_pending(
        self,
        path: str,
        name: str,
        payload: Mapping[str, Any],
        expected: str | _Absent | None,
        token: str | None,
    ) -> VersionInfo:
        """A pending version; current stays where it is.

        The expected version is checked before the put, not atomically with it:
        AWS cannot condition a put, and a pending version changes no reader.
        """
        if isinstance(expected, str):
            self._expect(path, name, expected)
        else:
            try:
                self._describe(path, name)
            except SecretNotFound:
                return self._create(path, name, payload, token, Stage.PENDING)
        version = token or str(uuid.uuid4())
        response = self._put(path, name, version, payload, "AWSPENDING")
        stages = _stages(response.get("VersionStages", ())) or {Stage.PENDING}
        return self._new(version, stages, payload)

    def _prune_disabled_tags(
        self, path: str, name: str, disabled: frozenset[str]
    ) -> None:
        """Drop the tags of disabled versions AWS has since purged: a secret
        holds at most 50 tags, and unlabelled versions do not live for ever."""
        gone = disabled - self._version_ids(path, name)
        if gone:
            keys = sorted(DISABLED_TAG + version for version in gone)
            self._call("untag_resource", path, SecretId=name, TagKeys=keys)

    def _end_rotation(self, path: str, name: str, before: _State) -> None:
        """An explicit new current value ends a half-finished rotation: its
        pending version must not be promoted over this one later (case C01)."""
        for version, labels in before.labels.items():
            if "AWSPENDING" in labels:
                self._relabel(path, name, "AWSPENDING", away=version)

    def _earlier(self, path: str, name: str, version: str) -> VersionInfo | None:
        """The version an earlier write with the same idempotency key made."""
        try:
            response = self._get(path, name, VersionId=version)
        except SecretNotFound:
            return None
        return self._info(path, name, response)

    def _expect(self, path: str, name: str, expected: str) -> _State:
        try:
            state = self._describe(path, name)
        except SecretNotFound:
            raise PreconditionFailed(
                f"secret {path!r} does not exist; expected version {expected}"
            ) from None
        if state.current != expected:
            raise PreconditionFailed(
                f"secret {path!r} is at version {state.current}, not {expected}"
            )
        return state

    def _abandoned(self, path: str, name: str, version: str, expected: str) -> bool:
        """Whether a rival's version on `expected` is old and was never swapped in."""
        if self._describe(path, name).current != expected:
            return False
        response = self._get(path, name, VersionId=version)
        served = response["ResponseMetadata"]["HTTPHeaders"].get("date")
        if served is None:
            return False
        age: timedelta = parsedate_to_datetime(served) - response["CreatedDate"]
        return age.total_seconds() >= self._abandoned_after

    def _get(
        self, path: str, name: str, subject: str = "such version", **where: str
    ) -> dict[str, Any]:
        return self._call("get_secret_value", path, subject, SecretId=name, **where)

    def _put(
        self,
        path: str,
        name: str,
        version: str,
        payload: Mapping[str, Any],
        label: str,
    ) -> dict[str, Any]:
        """Put `version` with one label; PreconditionFailed if its id holds
        another value already."""
        params: dict[str, Any] = {
            "ClientRequestToken": version,
            "VersionStages": [label],
        }
        return self._call("put_secret_value", path, SecretId=name, **params, **payload)

    def _move_current(
        self, path: str, name: str, version: str, current: str | None
    ) -> bool:
        """Swap AWSCURRENT from `current` to `version`; False if `current` lost it."""
        if version == current:
            return True
        try:
            self._relabel(path, name, "AWSCURRENT", to=version, away=current)
        except (InvalidRequest, Conflict):
            now = self._describe(path, name).current
            if now == version:
                return True
            if now == current:
                raise
            return False
        return True

    def _relabel(
        self,
        path: str,
        name: str,
        label: str,
        *,
        to: str | None = None,
        away: str | None = None,
    ) -> None:
        """Move `label` onto `to` and, atomically, off `away`, where it must be.

        With `away` only, a label already gone is fine: it moved on by itself.
        """
        params = {"SecretId": name, "VersionStage": label}
        if to is not None:
            params["MoveToVersionId"] = to
        if away is not None:
            params["RemoveFromVersionId"] = away
        try:
            self._call("update_secret_version_stage", path, **params)
        except (InvalidRequest, Conflict):
            if to is not None:
                raise
            log.debug("aws.label.gone", backend=self.name, path=path, label=label)

    def _describe(self, path: str, name: str) -> _State:
        response = self._call("describe_secret", path, SecretId=name)
        if response.get("DeletedDate") is not None:
            raise VersionDeleted(_scheduled_for_deletion(path))
        labels = {
            version: frozenset(names)
            for version, names in response.get("VersionIdsToStages", {}).items()
        }
        disabled = frozenset(
            tag["Key"].removeprefix(DISABLED_TAG)
            for tag in response.get("Tags", ())
            if tag["Key"].startswith(DISABLED_TAG)
        )
        return _State(labels, disabled)

    def _version_ids(self, path: str, name: str) -> set[str]:
        return {entry["VersionId"] for entry in self._version_entries(path, name)}

    def _version_entries(self, path: str, name: str) -> Iterator[dict[str, Any]]:
        """Every version AWS still keeps, labelled or not; fails on a repeated
        continuation token instead of looping."""
        seen: set[str] = set()
        token = None
        while True:
            extra: dict[str, str] = {"NextToken": token} if token else {}
            response = self._call(
                "list_secret_version_ids",
                path,
                SecretId=name,
                IncludeDeprecated=True,
                MaxResults=MAX_PAGE,
                **extra,
            )
            yield from response.get("Versions", ())
            token = response.get("NextToken") or None
            if token is None:
                return
            if token in seen:
                raise BackendError(
                    f"AWS Secrets Manager repeated a continuation token for {path!r}"
                )
            seen.add(token)

    def _info(self, path: str, name: str, response: Mapping[str, Any]) -> VersionInfo:
        version = response["VersionId"]
        stages = _stages(response.get("VersionStages", ()))
        # Only an unlabelled version can be disabled; labelled ones need no look-up.
        enabled = bool(stages) or version not in self._describe(path, name).disabled
        created: datetime = response["CreatedDate"]
        return VersionInfo(version, created, stages, enabled, _binary(response))

    def _new(
        self, version: str, stages: Collection[Stage], payload: Mapping[str, Any]
    ) -> VersionInfo:
        created = utc(self._clock.now())
        binary = "SecretBinary" in payload
        return VersionInfo(version, created, frozenset(stages), True, binary)

    def _name(self, path: str) -> str:
        name = self._prefix + path
        if not _NAME.fullmatch(name):
            raise InvalidRequest(
                f"secret path {path!r} is not a valid AWS secret name: use letters, "
                "digits and /_+=.@- only, at most 512 characters with the prefix"
            )
        return name

    def _call(
        self,
        operation: str,
        path: str | None,
        subject: str | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        """One client call; every botocore failure leaves here translated."""
        try:
            response: dict[str, Any] = getattr(self._client, operation)(**params)
        except (boto.ClientError, boto.BotoCoreError) as error:
            translated = translate(error, path, subject)
            _log_failure(self.name, operation, translated, error)
            raise translated from summarize(error)
        return response


# Error codes AWS Secrets Manager answers, by the condition they report.
# `test_aws.py` fails when the service model or the common AWS codes grow one
# that is missing here.
ERROR_CODES: Final[Mapping[str, type[TokenBrokerError]]] = {
    code: kind
    for codes, kind in [
        # The service model's own errors.
        ("ResourceNotFoundException", SecretNotFound),
        ("ResourceExistsException", PreconditionFailed),
        (
            "InvalidRequestException PreconditionNotMetException "
            "LimitExceededException",
            Conflict,
        ),
        (
            "InvalidParameterException InvalidNextTokenException "
            "MalformedPolicyDocumentException PublicPolicyException",
            InvalidRequest,
        ),
        ("DecryptionFailure EncryptionFailure InternalServiceError", BackendError),
        # Errors every AWS JSON service can answer.
        (
            "AccessDeniedException UnrecognizedClientException InvalidClientTokenId "
            "ExpiredTokenException ExpiredToken InvalidSignatureException "
            "SignatureDoesNotMatch IncompleteSignature MissingAuthenticationToken "
            "MissingAuthenticationTokenException RequestExpired NotAuthorized "
            "OptInRequired",
            BackendUnauthorized,
        ),
        (
            "ThrottlingException Throttling ThrottledException "
            "TooManyRequestsException RequestLimitExceeded RequestThrottled "
            "RequestThrottledException SlowDown PriorRequestNotComplete "
            "BandwidthLimitExceeded ProvisionedThroughputExceededException "
            "TransactionInProgressException EC2ThrottledException",
            Throttled,
        ),
        (
            "ServiceUnavailable ServiceUnavailableException RequestTimeout "
            "RequestTimeoutException",
            BackendUnavailable,
        ),
        (
            "ValidationException ValidationError InvalidParameterValue "
            "InvalidParameterCombination MissingParameter InvalidQueryParameter "
            "MalformedQueryString",
            InvalidRequest,
        ),
        (
            "InternalFailure InternalError SerializationException InvalidAction "
            "UnknownOperationException",
            BackendError,
        ),
    ]
    for code in codes.split()
}

_MESSAGES: Final[Mapping[type[TokenBrokerError], str]] = {
    PreconditionFailed: "{secret} or that version already exists ({code})",
    Conflict: "{secret} is not in a state that allows this ({code})",
    InvalidRequest: "AWS Secrets Manager rejected the request for {secret} ({code})",
    BackendUnauthorized: "AWS Secrets Manager refused the broker's key ({code})",
    BackendUnavailable: "AWS Secrets Manager cannot be reached ({code})",
    BackendError: "AWS Secrets Manager failed on {secret} ({code})",
}

# botocore's own exceptions, most specific first; the last row catches the rest.
BOTOCORE_ERRORS: Final[tuple[tuple[type[Exception], type[TokenBrokerError]], ...]] = (
    (boto.CapacityNotAvailableError, Throttled),
    (boto.ConnectionError, BackendUnavailable),
    (boto.HTTPClientError, BackendUnavailable),
    (boto.IncompleteReadError, BackendUnavailable),
    (boto.NoCredentialsError, BackendUnauthorized),
    (boto.PartialCredentialsError, BackendUnauthorized),
    (boto.CredentialRetrievalError, BackendUnauthorized),
    (boto.NoAuthTokenError, BackendUnauthorized),
    (boto.TokenRetrievalError, BackendUnauthorized),
    (boto.RefreshWithMFAUnsupportedError, BackendUnauthorized),
    (boto.MetadataRetrievalError, BackendUnauthorized),
    (boto.UnknownCredentialError, BackendUnauthorized),
    (boto.SSOError, BackendUnauthorized),
    (boto.LoginError, BackendUnauthorized),
    (boto.ParamValidationError, InvalidRequest),
    (boto.ValidationError, InvalidRequest),
    (boto.MissingParametersError, InvalidRequest),
    (boto.ProfileNotFound, BackendUnauthorized),
    (boto.ChecksumError, BackendError),
    (boto.FlexibleChecksumError, BackendError),
    # The client's own configuration (region, endpoint, retries) is unusable.
    (boto.BaseEndpointResolverError, BackendError),
    (boto.EndpointProviderError, BackendError),
    (boto.InvalidConfigError, BackendError),
    (boto.InvalidRetryConfigurationError, BackendError),
    (boto.InvalidEndpointConfigurationError, BackendError),
    (boto.InvalidDNSNameError, BackendError),
    (boto.UnknownRegionError, BackendError),
    (boto.ServiceNotInRegionError, BackendError),
    (boto.ConfigNotFound, BackendError),
    (boto.ConfigParseError, BackendError),
    (boto.BotoCoreError, BackendError),
)


def translate(
    error: Exception, path: str | None, subject: str | None = None
) -> TokenBrokerError:
    """The broker's error for a botocore failure; never quotes botocore's text.

    `subject` names what a not-found error is missing (`pending version`).
    """
    secret = "AWS Secrets Manager" if path is None else f"secret {path!r}"
    if isinstance(error, boto.ClientError):
        code = _code(error)
        kind = ERROR_CODES.get(code, BackendError)
        if kind is Conflict and code == "InvalidRequestException":
            message = str(error.response.get("Error", {}).get("Message", ""))
            if "delet" in message.lower():
                return VersionDeleted(_scheduled_for_deletion(path or ""))
    else:
        code = type(error).__name__
        kind = next(
            (kind for cls, kind in BOTOCORE_ERRORS if isinstance(error, cls)),
            BackendError,
        )

    if kind is SecretNotFound:
        missing = f"has no {subject}" if subject else "does not exist"
        return SecretNotFound(f"{secret} {missing}")
    if kind is Throttled:
        return Throttled(
            f"AWS Secrets Manager is throttling requests for {secret} ({code})",
            retry_after=_retry_after(error),
        )
    return kind(_MESSAGES.get(kind, _MESSAGES[BackendError]).format(**locals()))


def summarize(error: Exception) -> AwsFailure:
    """The cause to chain: class, code, operation and request id, no message."""
    if isinstance(error, boto.ClientError):
        metadata = error.response.get("ResponseMetadata", {})
        return AwsFailure(
            f"{type(error).__name__} {_code(error)} from {error.operation_name} "
            f"(HTTP {metadata.get('HTTPStatusCode')}, "
            f"request {metadata.get('RequestId')})"
        )
    return AwsFailure(type(error).__name__)


def make_client(config: AwsConfig, session: Any = None) -> Any:
    """A Secrets Manager client for `config`; the default credential chain unless
    a `boto3.Session` is given, and the assumed role on top when configured."""
    _keep_bodies_out_of_logs()
    session = session or boto3.Session()
    if config.role_arn is not None:
        session = _assume_role(session, config)
    options = BotoConfig(
        retries={"mode": "standard", "total_max_attempts": config.max_attempts},
        connect_timeout=config.timeout_seconds,
        read_timeout=config.timeout_seconds,
        user_agent_appid="tokenbroker",
    )
    try:
        return session.client(
            "secretsmanager",
            region_name=config.region,
            endpoint_url=config.endpoint_url,
            config=options,
        )
    except (boto.BotoCoreError, ValueError) as error:
        raise ConfigurationError(
            f"the AWS client cannot be built ({type(error).__name__})"
        ) from None


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


class _AssumedRole(CredentialProvider):  # type: ignore[misc]
    """Credentials of `role_arn`, refreshed by STS before they expire."""

    METHOD = "tokenbroker-assume-role"
    CANONICAL_NAME = "tokenbroker-assume-role"

    def __init__(self, fetcher: Any) -> None:
        super().__init__()
        self._fetcher = fetcher

    def load(self) -> Any:
        return DeferredRefreshableCredentials(
            refresh_using=self._fetcher.fetch_credentials, method=self.METHOD
        )


def _assume_role(source: Any, config: AwsConfig) -> Any:
    source_credentials = source.get_credentials()
    if source_credentials is None:
        raise ConfigurationError(
            "role_arn is set but the default AWS credential chain found no "
            "credentials to assume it with"
        )
    extra = {"RoleSessionName": config.role_session_name}
    if config.external_id is not None:
        extra["ExternalId"] = config.external_id
    fetcher = AssumeRoleCredentialFetcher(
        client_creator=functools.partial(
            source.client,
            region_name=config.region,
            endpoint_url=config.sts_endpoint_url,
        ),
        source_credentials=source_credentials,
        role_arn=config.role_arn,
        extra_args=extra,
    )
    assumed = botocore.session.Session()
    resolver = assumed.get_component("credential_provider")
    resolver.insert_before("env", _AssumedRole(fetcher))
    return boto3.Session(botocore_session=assumed, region_name=config.region)


class _NoWireDebug(logging.Filter):
    """Drops botocore's DEBUG records, which print request and response bodies."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


def _keep_bodies_out_of_logs() -> None:
    """botocore logs every request's parameters and every response body at DEBUG,
    values included; those two loggers never pass DEBUG once a client exists."""
    for name in ("botocore.endpoint", "botocore.parsers"):
        logger = logging.getLogger(name)
        if not any(isinstance(item, _NoWireDebug) for item in logger.filters):
            logger.addFilter(_NoWireDebug())


def _log_failure(
    backend: str, operation: str, translated: TokenBrokerError, error: Exception
) -> None:
    fields = {"backend": backend, "operation": operation, "error": translated.code}
    if isinstance(translated, Throttled | BackendUnavailable | BackendUnauthorized):
        log.warning("aws.call.degraded", **fields)
    elif type(translated) is BackendError:
        log.error("aws.call.failed", cause=summarize(error).args[0], **fields)


def _code(error: Any) -> str:
    code = str(error.response.get("Error", {}).get("Code", ""))
    return code if _CODE.fullmatch(code) else "UnrecognisedError"


def _retry_after(error: Exception) -> float:
    """Seconds a caller should wait: the server's hint, else botocore's next
    full-jitter backoff on average."""
    response = getattr(error, "response", {})
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    attempts: int = response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
    backoff = min(2.0**attempts, 20.0) / 2
    try:
        hinted = int(headers.get("x-amz-retry-after", "")) / 1000
    except ValueError:
        return backoff
    return max(backoff, hinted)


def _scheduled_for_deletion(path: str) -> str:
    return (
        f"secret {path!r} is scheduled for deletion in AWS Secrets Manager; "
        "restore it to use it again"
    )


def _version_id(path: str, version: str) -> str:
    if not 32 <= len(version) <= 64:
        raise SecretNotFound(f"secret {path!r} has no such version")
    return version


def cas_version_ids(name: str, expected: str) -> list[str]:
    """The version ids a compare-and-set on `expected` tries, in order."""
    return [
        str(uuid.uuid5(_TOKENS, f"cas\0{name}\0{expected}\0{generation}"))
        for generation in range(CAS_GENERATIONS)
    ]


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


def _stages(labels: Any) -> frozenset[Stage]:
    return frozenset(STAGES[label] for label in labels if label in STAGES)


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
