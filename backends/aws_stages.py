"""How the AWS backend moves staging labels: writes, compare-and-set, disabling.

Secrets Manager has labels where the broker has stages: AWSCURRENT, AWSPREVIOUS
and AWSPENDING. `AwsStages` holds the calls that read and move them and the
write algorithms built on those calls; `AwsBackend` inherits it and keeps the
protocol's methods.

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
`tokenbroker:disabled:<version>`, whose value names the stage labels it held; a
read by id of an unlabelled version checks the tags and answers VersionDisabled,
and so does a read of a stage that no version holds since its holder was
disabled. Enabling removes the tag; the labels stay off. The current version
cannot be disabled (AWS cannot take AWSCURRENT off without moving it): write or
promote another one first.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Final

import botocore.exceptions as boto  # type: ignore[import-untyped]
import structlog

from backends.aws_errors import (
    log_failure,
    scheduled_for_deletion,
    summarize,
    translate,
)
from backends.base import Stage, VersionInfo, _Absent
from service.clock import Clock, utc
from service.errors import (
    BackendError,
    Conflict,
    InvalidRequest,
    PreconditionFailed,
    SecretNotFound,
    VersionDeleted,
)

log = structlog.get_logger(__name__)

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
_TOKENS: Final = uuid.UUID("5b0c3d0e-8f64-4c4e-9a53-4a3c0f1d2e71")


@dataclass(frozen=True)
class _State:
    """One DescribeSecret answer: labels per version, current and disabled ids,
    and the stage labels each disabled version held when it was disabled."""

    labels: Mapping[str, frozenset[str]]
    disabled: frozenset[str]
    held: Mapping[str, frozenset[str]] = field(default_factory=dict)
    current: str | None = field(init=False)

    def __post_init__(self) -> None:
        holders = [v for v, labels in self.labels.items() if "AWSCURRENT" in labels]
        object.__setattr__(self, "current", holders[0] if holders else None)


def keyed_version_id(name: str, idempotency_key: str) -> str:
    """The version id every write with `idempotency_key` on `name` uses."""
    return str(uuid.uuid5(_TOKENS, f"key\0{name}\0{idempotency_key}"))


def cas_version_ids(name: str, expected: str) -> list[str]:
    """The version ids a compare-and-set on `expected` tries, in order."""
    return [
        str(uuid.uuid5(_TOKENS, f"cas\0{name}\0{expected}\0{generation}"))
        for generation in range(CAS_GENERATIONS)
    ]


def stages_of(labels: Any) -> frozenset[Stage]:
    """The broker's stages among AWS labels; TBSTAGED and others are dropped."""
    return frozenset(STAGES[label] for label in labels if label in STAGES)


class AwsStages:
    """Label moves and the Secrets Manager calls they take, for `AwsBackend`.

    The subclass sets the attributes declared here. Every client call goes
    through `_call`, the one place botocore errors are translated.
    """

    name: str
    _client: Any
    _clock: Clock
    _abandoned_after: float

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
                        f"secret {path!r}: another write on the expected version "
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
                f"secret {path!r} is at version {now}, not the one expected"
            )
        raise Conflict(
            f"secret {path!r}: earlier writes on the expected version were abandoned; "
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
        stages = stages_of(response.get("VersionStages", ())) or {Stage.PENDING}
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

    def _expect(self, path: str, name: str, expected: str) -> _State:
        try:
            state = self._describe(path, name)
        except SecretNotFound:
            raise PreconditionFailed(
                f"secret {path!r} does not exist; no version matches"
            ) from None
        if state.current != expected:
            raise PreconditionFailed(
                f"secret {path!r} is at version {state.current}, not the one expected"
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
            raise VersionDeleted(scheduled_for_deletion(path))
        labels = {
            version: frozenset(names)
            for version, names in response.get("VersionIdsToStages", {}).items()
        }
        held = {
            tag["Key"].removeprefix(DISABLED_TAG): frozenset(
                label for label in str(tag.get("Value", "")).split() if label in STAGES
            )
            for tag in response.get("Tags", ())
            if tag["Key"].startswith(DISABLED_TAG)
        }
        return _State(labels, frozenset(held), held)

    def _stage_disabled(self, path: str, name: str, stage: Stage) -> bool:
        """Whether no version holds `stage` because its holder was disabled."""
        state = self._describe(path, name)
        label = LABELS[stage]
        if any(label in labels for labels in state.labels.values()):
            return False
        return any(label in labels for labels in state.held.values())

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

    def _new(
        self, version: str, stages: Collection[Stage], payload: Mapping[str, Any]
    ) -> VersionInfo:
        created = utc(self._clock.now())
        binary = "SecretBinary" in payload
        return VersionInfo(version, created, frozenset(stages), True, binary)

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
            log_failure(self.name, operation, translated, error)
            raise translated from summarize(error)
        return response
