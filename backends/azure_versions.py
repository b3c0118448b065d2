"""What one Key Vault version holds for the broker: stage pointers and a value.

Stage pointers live in the tags of the head, the newest version: each version the
broker writes carries a sequence number and the three pointers as they stand
after that write (`self` names the version itself, whose id Key Vault assigns
only once it exists). A write therefore creates the new head and its pointers in
one request, and a promote rewrites the head's tags in one request.

Values: text is stored as is (`text/plain; charset=utf-8`); binary as base64
with the content type `application/octet-stream; base64`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from azure.keyvault.secrets import KeyVaultSecret, SecretProperties

from backends.base import ABSENT, Stage, VersionInfo, _Absent
from service.errors import (
    BackendError,
    InvalidRequest,
    PayloadTooLarge,
    PreconditionFailed,
    SecretNotFound,
)
from service.sensitive import Sensitive

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
VERSION_ID = re.compile(r"[0-9a-f]{32}")
EPOCH = datetime.fromtimestamp(0, tz=UTC)


@dataclass(frozen=True)
class State:
    """The head version of a secret and the stage pointers its tags hold."""

    head: SecretProperties
    head_secret: KeyVaultSecret | None
    pointers: Mapping[Stage, str | None]
    sequence: int

    @classmethod
    def of(cls, head: SecretProperties, secret: KeyVaultSecret | None) -> State:
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
            binary=is_binary(item.content_type) if binary is None else binary,
        )


def _pointer(tag: str | None, head_version: str) -> str | None:
    if tag == SELF:
        return head_version
    return tag if tag is not None and VERSION_ID.fullmatch(tag) else None


def _sequence(tags: Mapping[str, str]) -> int:
    text = tags.get(TAG_SEQUENCE, "")
    return int(text) if text.isdigit() else 0


def version_order(item: SecretProperties) -> tuple[datetime, int]:
    """Sort key, oldest first: creation time (whole seconds), then sequence."""
    return item.created_on or EPOCH, _sequence(item.tags or {})


def new_tags(
    path: str, state: State | None, stage: Stage, sequence: int
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
    return with_pointers(tags, pointers, None)


def with_pointers(
    tags: Mapping[str, str], pointers: Mapping[Stage, str | None], head: str | None
) -> dict[str, str]:
    """`tags` with the stage pointers replaced; `head` is written as `self`."""
    updated = {key: value for key, value in tags.items() if key not in _STAGE_TAGS}
    for stage, version in pointers.items():
        if version is not None:
            updated[TAG_STAGE[stage]] = SELF if version == head else version
    return updated


_STAGE_TAGS = frozenset(TAG_STAGE.values())


def check_expected(
    path: str, expected: str | _Absent | None, state: State | None
) -> None:
    """Raise PreconditionFailed unless the current version is `expected`."""
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
            f"secret {path!r} is at version {current}, not the one expected"
        )


def is_binary(content_type: str | None) -> bool:
    """Whether a content type marks a base64-encoded binary value."""
    return (content_type or "").replace(" ", "").lower() == BINARY.replace(" ", "")


def decode_value(path: str, secret: KeyVaultSecret) -> tuple[bytes, bool]:
    """The exact bytes a version holds, and whether they are binary."""
    text = secret.value
    if text is None:
        raise BackendError(f"Azure Key Vault answered secret {path!r} without a value")
    if is_binary(secret.properties.content_type):
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


def encode_value(
    path: str, value: Sensitive, binary: bool, limit: int
) -> tuple[str, str]:
    """The value as Key Vault stores it, and its content type.

    Raises PayloadTooLarge when the value, or its base64 form, is over `limit`
    bytes, and InvalidRequest when a text value is not UTF-8.
    """
    raw = value.reveal()
    if len(raw) > limit:
        raise PayloadTooLarge(
            f"the value of secret {path!r} is {len(raw)} bytes; the limit is "
            f"{limit} bytes"
        )
    if binary:
        text, content_type = base64.b64encode(raw).decode("ascii"), BINARY
    else:
        try:
            text, content_type = raw.decode("utf-8"), TEXT
        except UnicodeDecodeError:
            raise InvalidRequest(
                f"the value of secret {path!r} is not UTF-8 text; write it as binary"
            ) from None
    stored = len(text.encode("utf-8"))
    if stored > limit:
        raise PayloadTooLarge(
            f"the value of secret {path!r} is {len(raw)} bytes, {stored} bytes once "
            f"base64-encoded; the limit is {limit} bytes"
        )
    return text, content_type
