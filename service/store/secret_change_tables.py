"""The secret-change table: which secret changed where, for every process's cache.

One row per change made through a broker process (a write, a rotation's
finish or abandonment, a retirement, a refresh), so that every other process
drops its cached versions of the secret (service/secret_changes.py). The
others read an environment's rows newer than their last look, so
`(env, changed_at)` is indexed. A row matters only while some poll can still
read it back, seconds; older rows are deleted, so the table holds the changes
of about a minute.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, String, Table

from service.store.tables import UTCDateTime, metadata

secret_changes = Table(
    "secret_changes",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("env", String(32), nullable=False),
    Column("secret", String(256), nullable=False),
    # `write`, `rotation`, `retirement` or `refresh`
    Column("cause", String(16), nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
    Index(None, "env", "changed_at"),
)
