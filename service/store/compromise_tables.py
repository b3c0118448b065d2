"""The compromise tables: which tokens read what, and the kept reports.

`token_reads` notes, for every version of a secret, the tokens (by `jti`) that
read it, until each token expires: a compromise revokes exactly those. A row
with the `jti` `*` stands for tokens of that service the broker did not list
(more than a process keeps between two flushes); `expires_at` is the latest of
theirs. Rows are pruned once their token has expired, so the table holds no
more than the tokens alive now times the versions each read.

`compromises` keeps one row per compromise response, secret or service: what
was compromised, by whom and why, what the response did (`detail`, JSON of
names, versions and ids, never a value), and `announced_at`, when the other
broker processes were told; they also poll by it, so `(env, announced_at)` is
indexed. `compromise_reads` and `compromise_tokens` are the report's exposure:
who read what, and which tokens (kind `token`) or services' tokens (kind
`service`, revoked by watermark) were revoked because of it. Every process adds
what only it knew, so these rows grow for a moment after the response.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, String, Table, Text

from service.store.tables import UTCDateTime, metadata

token_reads = Table(
    "token_reads",
    metadata,
    Column("env", String(32), primary_key=True),
    Column("secret", String(256), primary_key=True),
    Column("version", String(128), primary_key=True),
    Column("service", String(64), primary_key=True),
    Column("jti", String(128), primary_key=True),
    Column("expires_at", UTCDateTime, nullable=False),
    Index(None, "expires_at"),
)

compromises = Table(
    "compromises",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("env", String(32), nullable=False),
    # `secret` or `service`
    Column("kind", String(16), nullable=False),
    # The secret's name or the service's.
    Column("subject", String(256), nullable=False),
    Column("version", String(128)),
    Column("reason", String(256), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # A service compromise reports what the service read from here on.
    Column("since", UTCDateTime),
    Column("announced_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("state", String(16), nullable=False),
    Column("detail", Text, nullable=False),
    Index(None, "env", "announced_at"),
    Index(None, "env", "created_at"),
)

compromise_reads = Table(
    "compromise_reads",
    metadata,
    Column("compromise_id", String(36), primary_key=True),
    Column("secret", String(256), primary_key=True),
    Column("version", String(128), primary_key=True),
    Column("service", String(64), primary_key=True),
    Column("first_read_at", UTCDateTime, nullable=False),
    Column("last_read_at", UTCDateTime, nullable=False),
    Column("reads", BigInteger, nullable=False),
)

compromise_tokens = Table(
    "compromise_tokens",
    metadata,
    Column("compromise_id", String(36), primary_key=True),
    # `token` (subject: a jti) or `service` (subject: a service name)
    Column("kind", String(16), primary_key=True),
    Column("subject", String(128), primary_key=True),
    Column("service", String(64), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=False),
)
