"""The rotation tables: schedules, rotation records, their steps, and consumers.

`rotation_secrets` holds one row per secret the broker rotates: its schedule
(the nominal slot of the next run and when it is due, jitter included), the
rotation that holds the secret right now (at most one), and what metrics show.
`rotations` is the record of each run, with the lease that makes it run in one
process at a time. `rotation_consumers` aggregates who read which version.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    String,
    Table,
)

from service.store.tables import UTCDateTime, metadata

rotation_secrets = Table(
    "rotation_secrets",
    metadata,
    Column("env", String(32), primary_key=True),
    Column("secret", String(256), primary_key=True),
    # `every:SECONDS` or `cron:EXPR`; a change re-plans the schedule.
    Column("spec", String(160)),
    Column("slot_at", UTCDateTime),
    Column("due_at", UTCDateTime),
    Column("active_rotation", String(36)),
    Column("current_version", String(128)),
    Column("current_since", UTCDateTime),
    Column("failures_in_row", Integer, nullable=False, default=0),
    Column("updated_at", UTCDateTime, nullable=False),
)

rotations = Table(
    "rotations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("env", String(32), nullable=False),
    Column("secret", String(256), nullable=False),
    Column("trigger", String(16), nullable=False),
    Column("late", Boolean, nullable=False, default=False),
    Column("no_grace", Boolean, nullable=False, default=False),
    Column("state", String(24), nullable=False),
    Column("step", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("test_attempts", Integer, nullable=False, default=0),
    Column("old_version", String(128)),
    Column("new_version", String(128)),
    # A reference the generator gave the new credential (an upstream id), never
    # the value itself.
    Column("credential_ref", String(256)),
    Column("failed_step", String(16)),
    Column("error", String(512)),
    Column("diverged", Boolean, nullable=False, default=False),
    Column("retire_policy", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("slot_at", UTCDateTime),
    Column("test_started_at", UTCDateTime),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("grace_until", UTCDateTime),
    Column("retired_at", UTCDateTime),
    Column("lease_owner", String(64)),
    Column("lease_until", UTCDateTime),
    Index(None, "env", "secret"),
    Index(None, "state", "next_attempt_at"),
)

rotation_steps = Table(
    "rotation_steps",
    metadata,
    Column("rotation_id", String(36), primary_key=True),
    Column("step", String(16), primary_key=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("runs", Integer, nullable=False, default=0),
    Column("outcome", String(16), nullable=False),
    Column("error", String(512)),
)

rotation_consumers = Table(
    "rotation_consumers",
    metadata,
    Column("env", String(32), primary_key=True),
    Column("secret", String(256), primary_key=True),
    Column("version", String(128), primary_key=True),
    Column("service", String(64), primary_key=True),
    Column("first_read_at", UTCDateTime, nullable=False),
    Column("last_read_at", UTCDateTime, nullable=False),
    Column("reads", BigInteger, nullable=False),
    # What one service read, for a service compromise (migration 0005).
    Index(None, "env", "service"),
)
