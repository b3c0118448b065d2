"""The `local` backend: secrets encrypted inside the broker's own store.

Each version is sealed with its own AES-256-GCM data key, wrapped by the
key-encryption key (see `service.crypto`); the associated data names environment,
path and version, so a ciphertext moved to another row does not open. Versions are
numbered from 1. Stage labels are three pointer columns of the secret's row.

Writes take the row's write lock first (an UPDATE before any SELECT), so two
writers never both read the same latest version: on SQLite that avoids the
read-then-upgrade deadlock, on PostgreSQL the second writer re-checks its
compare-and-set against the first one's result.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, Engine, Row, and_, insert, select, text, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

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
from service.crypto import Envelope, Sealed
from service.errors import (
    BackendUnavailable,
    InvalidRequest,
    PreconditionFailed,
    SecretNotFound,
    VersionDisabled,
)
from service.sensitive import Sensitive
from service.store.tables import local_secret_versions as versions_table
from service.store.tables import local_secrets as secrets_table

WRITE_ATTEMPTS = 5
_VERSION_NUMBER = re.compile(r"[1-9][0-9]{0,9}")


class _Replayed(Exception):
    """A write's idempotency key was used before: undo this one, answer that one."""

    def __init__(self, info: VersionInfo) -> None:
        self.info = info


class LocalConfig(BaseModel):
    """`{type: local}`: no options beyond the value size limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["local"]
    max_value_bytes: int = Field(default=65536, ge=1, le=4 * 1024 * 1024)


class LocalBackend:
    """Secret versions in the broker's store, envelope-encrypted."""

    def __init__(
        self,
        name: str,
        *,
        env: str,
        engine: Engine,
        envelope: Envelope,
        clock: Clock,
        max_value_bytes: int = 65536,
    ) -> None:
        self.name = name
        self.max_value_bytes = max_value_bytes
        self._env = env
        self._engine = engine
        self._envelope = envelope
        self._clock = clock

    def __repr__(self) -> str:
        return f"LocalBackend(name={self.name!r}, env={self._env!r})"

    def read(
        self, path: str, *, version: str | None = None, stage: Stage | None = None
    ) -> SecretVersion:
        with self._connect() as connection:
            secret = self._secret_row(connection, path)
            number = _resolve(secret, version, stage)
            row = connection.execute(
                select(versions_table).where(self._version_key(path, number))
            ).first()
        if row is None:
            raise SecretNotFound(f"secret {path!r} has no version {number}")
        if not row.enabled:
            raise VersionDisabled(f"version {number} of secret {path!r} is disabled")
        sealed = Sealed(row.ciphertext, row.wrapped_key, row.kek_id)
        value = self._envelope.open(sealed, self._aad(path, number))
        return SecretVersion(path, _info(row, secret), Sensitive(value))

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
        for _attempt in range(WRITE_ATTEMPTS):
            try:
                with self._connect() as connection, connection.begin():
                    return self._write_once(
                        connection,
                        path,
                        value,
                        binary,
                        expected_version,
                        stage,
                        idempotency_key,
                    )
            except _Replayed as replayed:
                return replayed.info
            except IntegrityError:
                # Another writer created the same secret or used the same
                # idempotency key in between; the next attempt sees its result.
                continue
        raise BackendUnavailable(f"secret {path!r} is being written concurrently")

    def _write_once(
        self,
        connection: Connection,
        path: str,
        value: Sensitive,
        binary: bool,
        expected_version: str | _Absent | None,
        stage: Stage,
        idempotency_key: str | None,
    ) -> VersionInfo:
        now = utc(self._clock.now())
        claimed = connection.execute(
            update(secrets_table)
            .where(self._secret_key(path))
            .values(latest_version=secrets_table.c.latest_version + 1, updated_at=now)
            .returning(secrets_table.c.latest_version, secrets_table.c.current_version)
        ).first()

        if idempotency_key is not None:
            earlier = self._by_idempotency_key(connection, path, idempotency_key)
            if earlier is not None:
                raise _Replayed(earlier)

        if claimed is None:
            if isinstance(expected_version, str):
                raise PreconditionFailed(
                    f"secret {path!r} does not exist; no version matches"
                )
            number, current = 1, None
            connection.execute(
                insert(secrets_table).values(
                    env=self._env,
                    path=path,
                    latest_version=1,
                    created_at=now,
                    updated_at=now,
                )
            )
        else:
            number, current = claimed
            _check_expected(path, expected_version, current)

        sealed = self._envelope.seal(value.reveal(), self._aad(path, number))
        connection.execute(
            insert(versions_table).values(
                env=self._env,
                path=path,
                version=number,
                ciphertext=sealed.ciphertext,
                wrapped_key=sealed.wrapped_key,
                kek_id=sealed.kek_id,
                binary=binary,
                enabled=True,
                created_at=now,
                idempotency_key=idempotency_key,
            )
        )
        if stage is Stage.CURRENT:
            # An explicit new current value also ends any half-finished rotation:
            # its pending version must not be promoted over this one later.
            pointers = {"current_version": number, "pending_version": None}
            if current is not None:
                pointers["previous_version"] = current
        else:
            pointers = {"pending_version": number}
        connection.execute(
            update(secrets_table).where(self._secret_key(path)).values(**pointers)
        )
        stages = frozenset({stage})
        return VersionInfo(str(number), now, stages, enabled=True, binary=binary)

    def promote(self, path: str, version: str) -> VersionInfo:
        number = _parse_version(path, version)
        with self._connect() as connection, connection.begin():
            secret = self._secret_row(connection, path)
            row = connection.execute(
                select(versions_table).where(self._version_key(path, number))
            ).first()
            if row is None:
                raise SecretNotFound(f"secret {path!r} has no version {number}")
            if secret.current_version == number:
                return _info(row, secret)
            pointers: dict[str, Any] = {
                "current_version": number,
                "previous_version": secret.current_version,
                "updated_at": utc(self._clock.now()),
            }
            if secret.pending_version == number:
                pointers["pending_version"] = None
            connection.execute(
                update(secrets_table).where(self._secret_key(path)).values(**pointers)
            )
            return _info(row, self._secret_row(connection, path))

    def set_enabled(self, path: str, version: str, enabled: bool) -> None:
        number = _parse_version(path, version)
        with self._connect() as connection, connection.begin():
            changed = connection.execute(
                update(versions_table)
                .where(self._version_key(path, number))
                .values(enabled=enabled)
            ).rowcount
        if not changed:
            raise SecretNotFound(f"secret {path!r} has no version {number}")

    def versions(self, path: str) -> list[VersionInfo]:
        with self._connect() as connection:
            secret = self._secret_row(connection, path)
            rows = connection.execute(
                select(versions_table)
                .where(versions_table.c.env == self._env, versions_table.c.path == path)
                .order_by(versions_table.c.version)
            ).all()
        return [_info(row, secret) for row in rows]

    def list(
        self, prefix: str, *, page_size: int, page_token: str | None = None
    ) -> SecretPage:
        after = _decode_token(page_token)
        query = (
            select(
                secrets_table.c.path,
                secrets_table.c.current_version,
                secrets_table.c.updated_at,
            )
            .where(secrets_table.c.env == self._env)
            .order_by(secrets_table.c.path)
            .limit(page_size + 1)
        )
        if prefix:
            query = query.where(
                secrets_table.c.path.startswith(prefix, autoescape=True)
            )
        if after is not None:
            query = query.where(secrets_table.c.path > after)
        with self._connect() as connection:
            rows = connection.execute(query).all()
        items = [
            SecretSummary(
                row.path,
                None if row.current_version is None else str(row.current_version),
                row.updated_at,
            )
            for row in rows[:page_size]
        ]
        more = len(rows) > page_size
        return SecretPage(items, _encode_token(items[-1].path) if more else None)

    def check(self) -> None:
        with self._connect() as connection:
            connection.execute(text("SELECT 1"))

    def close(self) -> None:
        """The engine belongs to the store; nothing of the backend's own to close."""

    def _connect(self) -> Connection:
        try:
            return self._engine.connect()
        except SQLAlchemyError as error:
            raise BackendUnavailable("the broker's store cannot be reached") from error

    def _secret_row(self, connection: Connection, path: str) -> Row[Any]:
        row = connection.execute(
            select(secrets_table).where(self._secret_key(path))
        ).first()
        if row is None:
            raise SecretNotFound(f"secret {path!r} does not exist")
        return row

    def _by_idempotency_key(
        self, connection: Connection, path: str, key: str
    ) -> VersionInfo | None:
        row = connection.execute(
            select(versions_table).where(
                versions_table.c.env == self._env,
                versions_table.c.path == path,
                versions_table.c.idempotency_key == key,
            )
        ).first()
        if row is None:
            return None
        return _info(row, self._secret_row(connection, path))

    def _secret_key(self, path: str) -> Any:
        return and_(secrets_table.c.env == self._env, secrets_table.c.path == path)

    def _version_key(self, path: str, number: int) -> Any:
        return and_(
            versions_table.c.env == self._env,
            versions_table.c.path == path,
            versions_table.c.version == number,
        )

    def _aad(self, path: str, number: int) -> bytes:
        return f"tokenbroker local\x00{self._env}\x00{path}\x00{number}".encode()


def _resolve(secret: Row[Any], version: str | None, stage: Stage | None) -> int:
    """The version number a read asks for."""
    if version is not None:
        return _parse_version(secret.path, version)
    pointer = {
        None: secret.current_version,
        Stage.CURRENT: secret.current_version,
        Stage.PREVIOUS: secret.previous_version,
        Stage.PENDING: secret.pending_version,
    }[stage]
    if pointer is None:
        label = (stage or Stage.CURRENT).value
        raise SecretNotFound(f"secret {secret.path!r} has no {label} version")
    return int(pointer)


def _parse_version(path: str, version: str) -> int:
    # Only the digits a version was written as name it: not "02", and not
    # digits of other scripts, which int() would read as the same number.
    if not _VERSION_NUMBER.fullmatch(version) or int(version) >= 2**31:
        raise SecretNotFound(f"secret {path!r} has no such version")
    return int(version)


def _check_expected(
    path: str, expected: str | _Absent | None, current: int | None
) -> None:
    if expected is None:
        return
    if expected is ABSENT:
        raise PreconditionFailed(
            f"secret {path!r} already exists; current version {current}"
        )
    if current is None or expected != str(current):
        raise PreconditionFailed(
            f"secret {path!r} is at version {current}, not the one expected"
        )


def _info(row: Row[Any], secret: Row[Any]) -> VersionInfo:
    pointers: Mapping[Stage, int | None] = {
        Stage.CURRENT: secret.current_version,
        Stage.PREVIOUS: secret.previous_version,
        Stage.PENDING: secret.pending_version,
    }
    stages = frozenset(
        stage for stage, number in pointers.items() if number == row.version
    )
    created_at: datetime = row.created_at
    return VersionInfo(str(row.version), created_at, stages, row.enabled, row.binary)


def _encode_token(path: str) -> str:
    return base64.urlsafe_b64encode(path.encode()).decode().rstrip("=")


def _decode_token(token: str | None) -> str | None:
    if not token:
        return None
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidRequest("page_token is not one this broker issued") from None


Config = LocalConfig


def create(name: str, config: LocalConfig, context: BackendContext) -> LocalBackend:
    """The registry's entry point: a local backend for one environment."""
    return LocalBackend(
        name,
        env=context.env,
        engine=context.engine,
        envelope=context.envelope,
        clock=context.clock,
        max_value_bytes=config.max_value_bytes,
    )
