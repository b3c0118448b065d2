"""The audit tables: hash-chained records, each chain's head, policy history.

`audit_records` holds one chain per environment, numbered from 1 without gaps;
each record's `hash` covers the previous record's hash and the record's own
canonical JSON (service/audit_chain.py). `audit_heads` holds the newest record
of each chain: appending locks that row, so that writers in several processes
take turns and the chain never forks. `policy_revisions` keeps every revision
of every policy document, deletions included, so any past policy can be read.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Integer, String, Table, Text

from service.store.tables import UTCDateTime, metadata

audit_records = Table(
    "audit_records",
    metadata,
    Column("env", String(32), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", UTCDateTime, nullable=False),
    Column("action", String(64), nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("actor", String(128)),
    Column("target", String(512)),
    Column("version", String(128)),
    Column("request_id", String(64)),
    Column("source", String(64)),
    # Canonical JSON of the remaining fields: names, ids and counts, never a value.
    Column("detail", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_heads = Table(
    "audit_heads",
    metadata,
    Column("env", String(32), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

policy_revisions = Table(
    "policy_revisions",
    metadata,
    Column("env", String(32), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("revision", Integer, primary_key=True, autoincrement=False),
    Column("media_type", String(64), nullable=False),
    Column("source", Text, nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(128), nullable=False),
)
