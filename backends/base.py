"""The protocol every secret store implements, and the types it speaks.

`service/` depends on this module only; it never imports a store's SDK. A backend
translates its SDK's errors into `service.errors` at its own boundary (most
specific first, cause chained), so the broker answers the same status for the same
condition on every store.

Paths are the backend-side names of secrets (`prod/payments/stripe`); the broker
maps its own secret names onto them. Versions are strings because stores disagree
on their form: numbers for `local` and Vault, UUIDs for AWS, hex ids for Azure.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from service.sensitive import Sensitive


class Stage(enum.StrEnum):
    """Labels that point at versions; rotation moves them."""

    CURRENT = "current"
    PREVIOUS = "previous"
    PENDING = "pending"


class _Absent:
    """Marker for a compare-and-set that requires the secret not to exist yet."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """What a store knows about one version, without its value."""

    version: str
    created_at: datetime
    stages: frozenset[Stage] = frozenset()
    enabled: bool = True
    binary: bool = False


@dataclass(frozen=True, slots=True)
class SecretVersion:
    """One version of a secret with its value; the value masks itself."""

    path: str
    info: VersionInfo
    value: Sensitive = field(repr=False)

    @property
    def version(self) -> str:
        return self.info.version


@dataclass(frozen=True, slots=True)
class SecretSummary:
    """One entry of a listing: a path and its current version, never a value."""

    path: str
    current_version: str | None
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class SecretPage:
    """One page of a listing; `next_token` is None on the last page.

    A page may hold fewer items than asked for, even none, while `next_token` is
    set: callers keep going until it is None.
    """

    items: Sequence[SecretSummary]
    next_token: str | None


@runtime_checkable
class SecretBackend(Protocol):
    """A secret store: versions of byte values, with stages, behind paths."""

    name: str
    """The backend's name in the environment's configuration (`aws-main`)."""

    max_value_bytes: int
    """The largest value the store accepts; the broker refuses larger ones first."""

    def read(
        self, path: str, *, version: str | None = None, stage: Stage | None = None
    ) -> SecretVersion:
        """The version asked for, by id or by stage; the current one by default.

        Raises SecretNotFound, VersionDisabled, VersionDeleted or VersionDestroyed.
        """
        ...

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
        """Store a new version and answer it.

        With `stage=CURRENT` the new version becomes current and the old current
        becomes previous. With `stage=PENDING` only the pending label moves to it
        (rotation's create step). `expected_version` makes the write a
        compare-and-set against the current version (`ABSENT`: the secret must not
        exist); a mismatch raises PreconditionFailed. Writing twice with the same
        `idempotency_key` answers the first write's version.
        """
        ...

    def promote(self, path: str, version: str) -> VersionInfo:
        """Make `version` current; the old current becomes previous.

        The pending label is removed from `version`. Raises SecretNotFound.
        """
        ...

    def set_enabled(self, path: str, version: str, enabled: bool) -> None:
        """Disable a version (reads raise VersionDisabled) or enable it again."""
        ...

    def versions(self, path: str) -> list[VersionInfo]:
        """Every version the store still knows, oldest first. Raises SecretNotFound."""
        ...

    def list(
        self, prefix: str, *, page_size: int, page_token: str | None = None
    ) -> SecretPage:
        """Secrets whose path starts with `prefix`, one page at a time."""
        ...

    def check(self) -> None:
        """Return when the store is reachable; raise BackendUnavailable otherwise."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
