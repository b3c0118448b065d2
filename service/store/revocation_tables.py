"""The revocation table: what is revoked in each environment, and until when.

One row per revoked thing, keyed by environment, kind and subject:

- `token`: one token, by its `jti`;
- `service`: every token of a service issued at or before `revoked_at` (a
  watermark), and with `disabled` set every token at all, new ones included;
- `key`: every token signed by a key, by its `kid`.

`expires_at` is when the row stops mattering: the last moment a token it names
can still be valid. Rows past it are deleted (a disabled service's row is kept
until the service is enabled again). `recorded_at` is when the row last
changed: other broker processes read an environment's rows newer than their
last look, so `(env, recorded_at)` is indexed. `revision` counts the changes
of a row, so that a process never lets an older state of a service overwrite a
newer one it has already seen.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Index, Integer, String, Table

from service.store.tables import UTCDateTime, metadata

revocations = Table(
    "revocations",
    metadata,
    Column("env", String(32), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("subject", String(128), primary_key=True),
    Column("revoked_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("actor", String(128)),
    Column("reason", String(256)),
    Index(None, "env", "recorded_at"),
    Index(None, "expires_at"),
)
