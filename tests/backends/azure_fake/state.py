"""What the fake vault holds, and the faults it injects, without any HTTP.

The model follows Key Vault's documented behaviour where the backend depends on
it: names are case-insensitive; "latest" is the newest version; a disabled
version answers 403 `SecretDisabled` to a get; a deleted secret is held in the
deleted collection, blocks its name (409 `Conflict`) until it is recovered or
purged, and both of those leave the name in a short limbo (409
`ObjectIsBeingDeleted` / `ObjectIsBeingRecovered`) during which gets answer 404.
"""

from __future__ import annotations

import random
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

NAME = re.compile(r"[0-9a-zA-Z-]{1,127}")
MAX_VALUE_CHARACTERS = 25 * 1024
RECOVERABLE = "Recoverable"
PURGEABLE = "Recoverable+Purgeable"


class FakeError(Exception):
    """An error answer in Key Vault's format: `{"error": {"code", "message"}}`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        inner_code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.inner_code = inner_code
        self.headers = headers or {}


@dataclass
class Version:
    id: str
    value: str
    content_type: str | None
    tags: dict[str, str]
    enabled: bool
    created: int
    updated: int


@dataclass
class Secret:
    name: str
    versions: list[Version] = field(default_factory=list)

    @property
    def latest(self) -> Version:
        return self.versions[-1]


@dataclass
class Deleted:
    secret: Secret
    deleted: int
    scheduled_purge: int


@dataclass
class Faults:
    """Knobs a test turns to make the vault misbehave on purpose.

    `page_size` caps every listing page; `empty_first_page` answers `[]` with a
    `nextLink` first; `next_link_host` puts another host in page links;
    `repeat_skiptoken` answers page two's link again instead of page three's.
    `throttle_next` answers the next N authorised calls 429, and
    `throttle_fraction` a share of them (never more than `throttle_in_a_row` in
    a row for one URL), each with `Retry-After: retry_after`.
    `purge_protection` refuses purges; `limbo_seconds` is how long a purged or
    recovered name stays in limbo.
    """

    page_size: int = 25
    empty_first_page: bool = False
    next_link_host: str | None = None
    repeat_skiptoken: bool = False
    throttle_next: int = 0
    throttle_fraction: float = 0.0
    throttle_in_a_row: int = 2
    retry_after: int = 1
    purge_protection: bool = False
    limbo_seconds: float = 1.0


@dataclass(frozen=True)
class Seen:
    """One request as the fake received it."""

    method: str
    host: str
    path: str
    sent_authorization: bool
    status: int
    at: float
    """When it arrived, in `time.monotonic()` seconds."""


class Vault:
    """One key vault's secrets, deleted secrets and limbo, behind one lock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.faults = Faults()
        self.seen: list[Seen] = []
        self.lock = threading.RLock()
        self._clock = clock
        self._secrets: dict[str, Secret] = {}
        self._deleted: dict[str, Deleted] = {}
        self._purging: dict[str, float] = {}
        self._recovering: dict[str, tuple[float, Secret]] = {}
        self._random = random.Random(7)
        self._throttled_in_a_row: dict[str, int] = {}

    def reset(self) -> None:
        with self.lock:
            self.faults = Faults()
            self.seen.clear()
            self._secrets.clear()
            self._deleted.clear()
            self._purging.clear()
            self._recovering.clear()
            self._throttled_in_a_row.clear()

    # Faults -------------------------------------------------------------------

    def throttles(self, request_key: str) -> bool:
        """Whether this request is answered 429, by the throttling knobs."""
        with self.lock:
            faults = self.faults
            if faults.throttle_next > 0:
                faults.throttle_next -= 1
                return True
            if faults.throttle_fraction <= 0:
                return False
            in_a_row = self._throttled_in_a_row.get(request_key, 0)
            if in_a_row < faults.throttle_in_a_row and (
                self._random.random() < faults.throttle_fraction
            ):
                self._throttled_in_a_row[request_key] = in_a_row + 1
                return True
            self._throttled_in_a_row.pop(request_key, None)
            return False

    # Secrets ------------------------------------------------------------------

    def set(
        self,
        name: str,
        value: str,
        *,
        content_type: str | None,
        tags: dict[str, str],
        enabled: bool,
    ) -> Version:
        _check_name(name)
        if len(value) > MAX_VALUE_CHARACTERS:
            raise FakeError(400, "BadParameter", "The secret value is too large.")
        with self.lock:
            key = self._settle(name)
            if key in self._purging:
                raise FakeError(
                    409, "ObjectIsBeingDeleted", f"Secret {name} is being deleted."
                )
            if key in self._recovering:
                raise FakeError(
                    409,
                    "ObjectIsBeingRecovered",
                    f"Secret {name} is being recovered.",
                )
            if key in self._deleted:
                raise FakeError(
                    409,
                    "Conflict",
                    f"Secret {name} is currently in a deleted but recoverable state, "
                    "and its name cannot be reused; in this state, the secret can "
                    "only be recovered or purged.",
                )
            now = int(time.time())
            version = Version(
                uuid.uuid4().hex, value, content_type, dict(tags), enabled, now, now
            )
            self._secrets.setdefault(key, Secret(name)).versions.append(version)
            return version

    def get(self, name: str, version: str = "") -> tuple[Secret, Version]:
        with self.lock:
            secret = self._secret(name)
            found = self._version(secret, version)
            if not found.enabled:
                raise FakeError(
                    403,
                    "Forbidden",
                    "Operation get is not allowed on a disabled secret.",
                    inner_code="SecretDisabled",
                )
            return secret, found

    def update(
        self,
        name: str,
        version: str,
        *,
        enabled: bool | None,
        tags: dict[str, str] | None,
        content_type: str | None,
    ) -> tuple[Secret, Version]:
        with self.lock:
            secret = self._secret(name)
            found = self._version(secret, version)
            if enabled is not None:
                found.enabled = enabled
            if tags is not None:
                found.tags = dict(tags)
            if content_type is not None:
                found.content_type = content_type
            found.updated = int(time.time())
            return secret, found

    def versions(self, name: str) -> list[Version]:
        with self.lock:
            return list(self._secret(name).versions)

    def secrets(self) -> list[Secret]:
        with self.lock:
            for key in list(self._recovering):
                self._settle(key)
            return [self._secrets[key] for key in sorted(self._secrets)]

    # Soft delete --------------------------------------------------------------

    def delete(self, name: str) -> Deleted:
        with self.lock:
            key = self._settle(name)
            secret = self._secret(name)
            now = int(time.time())
            deleted = Deleted(secret, now, now + 90 * 86400)
            del self._secrets[key]
            self._deleted[key] = deleted
            return deleted

    def deleted(self, name: str) -> Deleted:
        with self.lock:
            key = self._settle(name)
            if key not in self._deleted:
                raise FakeError(
                    404, "SecretNotFound", f"Deleted Secret not found: {name}"
                )
            return self._deleted[key]

    def recover(self, name: str) -> Secret:
        with self.lock:
            deleted = self.deleted(name)
            key = name.lower()
            del self._deleted[key]
            until = self._clock() + self.faults.limbo_seconds
            self._recovering[key] = (until, deleted.secret)
            return deleted.secret

    def purge(self, name: str) -> None:
        with self.lock:
            self.deleted(name)
            if self.faults.purge_protection:
                raise FakeError(
                    403,
                    "Forbidden",
                    'Operation "purge" is not allowed because purge protection is '
                    "enabled for this vault.",
                )
            key = name.lower()
            del self._deleted[key]
            self._purging[key] = self._clock() + self.faults.limbo_seconds

    @property
    def recovery_level(self) -> str:
        return RECOVERABLE if self.faults.purge_protection else PURGEABLE

    # Helpers ------------------------------------------------------------------

    def _settle(self, name: str) -> str:
        """Ends the limbo of `name` when its window has passed; answers its key."""
        key = name.lower()
        now = self._clock()
        if key in self._purging and self._purging[key] <= now:
            del self._purging[key]
        if key in self._recovering and self._recovering[key][0] <= now:
            self._secrets[key] = self._recovering.pop(key)[1]
        return key

    def _secret(self, name: str) -> Secret:
        _check_name(name)
        key = self._settle(name)
        if key not in self._secrets:
            raise FakeError(
                404,
                "SecretNotFound",
                f"A secret with (name/id) {name} was not found in this key vault.",
            )
        return self._secrets[key]

    def _version(self, secret: Secret, version: str) -> Version:
        if not version:
            return secret.latest
        for candidate in secret.versions:
            if candidate.id == version.lower():
                return candidate
        raise FakeError(
            404,
            "SecretNotFound",
            f"A secret with (name/id) {secret.name}/{version} was not found in "
            "this key vault.",
        )


def _check_name(name: str) -> None:
    if not NAME.fullmatch(name):
        raise FakeError(
            400,
            "BadParameter",
            "The request URI contains an invalid name: secret names may only "
            "contain alphanumeric characters and dashes.",
        )
