"""The store's tables. Alembic migrations under `migrations/` create and change them.

Every table is keyed by environment first: nothing in one environment can be
reached through another's keys.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        return value.astimezone(UTC)

    def process_result_value(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("env", String(32), primary_key=True),
    Column("kid", String(64), primary_key=True),
    Column("algorithm", String(16), nullable=False),
    Column("public_jwk", Text, nullable=False),
    Column("private_key", LargeBinary, nullable=False),
    Column("kek_id", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("not_after", UTCDateTime, nullable=False),
    Column("retired_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
    # When the key first signs; NULL for keys that signed from `created_at`.
    Column("activates_at", UTCDateTime),
)

policy_documents = Table(
    "policy_documents",
    metadata,
    Column("env", String(32), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("media_type", String(64), nullable=False),
    Column("source", Text, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(128), nullable=False),
)

credentials = Table(
    "credentials",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("env", String(32), nullable=False),
    Column("service", String(64), nullable=False),
    # HMAC-SHA256 of the client secret under a key derived from the KEK.
    Column("secret_hash", LargeBinary(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    Index(None, "env", "service"),
)

local_secrets = Table(
    "local_secrets",
    metadata,
    Column("env", String(32), primary_key=True),
    Column("path", String(512), primary_key=True),
    Column("latest_version", Integer, nullable=False),
    Column("current_version", Integer),
    Column("previous_version", Integer),
    Column("pending_version", Integer),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

local_secret_versions = Table(
    "local_secret_versions",
    metadata,
    Column("env", String(32), primary_key=True),
    Column("path", String(512), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("kek_id", String(32), nullable=False),
    Column("binary", Boolean, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("idempotency_key", String(128)),
    UniqueConstraint("env", "path", "idempotency_key"),
)
