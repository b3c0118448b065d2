"""Rotation records in the store, and the leases that run each in one process.

A rotation holds its secret (`rotation_secrets.active_rotation`) from the moment
it is opened until it finishes, is abandoned, or a person resolves it: a second
rotation of the same secret is never opened on top. Whoever wants to run a
rotation first takes its lease with a compare-and-set on the row; every save
renews the lease and fails with `LeaseLost` when another process took it over
after it expired. A lease names one run, not a process: two threads of one
process never run the same rotation at once either. An emergency's demand to
skip the grace (`demand_no_grace`) needs no lease, so it reaches a rotation that
another run holds: every save keeps it. The same statements work on SQLite and
on PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, Row, and_, case, or_, select, true, update
from sqlalchemy.dialects import postgresql, sqlite

from service.clock import Clock, utc
from service.rotation.step_log import Step, StepLog, StepRecord
from service.store.rotation_tables import rotation_secrets as secrets_table
from service.store.rotation_tables import rotations as table

__all__ = [
    "HOLDING", "RUNNABLE", "LeaseLost", "Opened", "Rotation", "RotationStore",
    "SlotClaim", "State", "Step", "StepRecord", "holder", "run_lease",
]  # fmt: skip


class State(StrEnum):
    """Where a rotation stands."""

    RUNNING = "running"
    RETRYING = "retrying"
    NEEDS_ATTENTION = "needs_attention"
    GRACE = "grace"
    COMPLETED = "completed"
    ABANDONED = "abandoned"


HOLDING = frozenset({State.RUNNING, State.RETRYING, State.NEEDS_ATTENTION})
RUNNABLE = frozenset({State.RUNNING, State.RETRYING})
_TIMES = (
    "created_at", "updated_at", "slot_at", "test_started_at", "next_attempt_at",
    "finished_at", "grace_until", "retired_at", "lease_until",
)  # fmt: skip


class LeaseLost(Exception):
    """Another process holds this rotation now; stop touching it."""


@dataclass(frozen=True, slots=True)
class Rotation:
    """One rotation run; times are epoch seconds."""

    id: str
    env: str
    secret: str
    trigger: str
    state: State
    step: Step
    retire_policy: str
    created_at: float
    updated_at: float
    next_attempt_at: float
    late: bool = False
    no_grace: bool = False
    attempts: int = 0
    test_attempts: int = 0
    old_version: str | None = None
    new_version: str | None = None
    credential_ref: str | None = None
    failed_step: str | None = None
    error: str | None = None
    diverged: bool = False
    slot_at: float | None = None
    test_started_at: float | None = None
    finished_at: float | None = None
    grace_until: float | None = None
    retired_at: float | None = None
    lease_owner: str | None = None
    lease_until: float | None = None

    def replace(self, **changes: Any) -> Rotation:
        return dataclasses.replace(self, **changes)


def run_lease(owner: str) -> str:
    """A lease holder's name for one run of `owner` (a process)."""
    return f"{owner}:{uuid.uuid4().hex[:8]}"


def holder(rotation: Rotation) -> str:
    """The lease the run that claimed `rotation` holds it under."""
    if rotation.lease_owner is None:
        raise LeaseLost(rotation.id)
    return rotation.lease_owner


@dataclass(frozen=True, slots=True)
class SlotClaim:
    """Move a schedule from `slot` to `next_slot`, if nobody did it first."""

    spec: str
    slot: float
    next_slot: float
    next_due: float


@dataclass(frozen=True, slots=True)
class Opened:
    """The outcome of `open`: the rotation holding the secret, and if it is new."""

    rotation: Rotation
    created: bool


class RotationStore(StepLog):
    """Reads and writes rotation records, schedules and step logs."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock
        dialect = sqlite if engine.dialect.name == "sqlite" else postgresql
        self._insert = dialect.insert

    def get(self, rotation_id: str) -> Rotation | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(table).where(table.c.id == rotation_id)
            ).first()
        return None if row is None else _rotation(row)

    def history(self, env: str, secret: str, limit: int = 20) -> list[Rotation]:
        """The latest rotations of a secret, newest first."""
        query = (
            select(table)
            .where(table.c.env == env, table.c.secret == secret)
            .order_by(table.c.created_at.desc())
            .limit(limit)
        )
        with self.engine.connect() as connection:
            return [_rotation(row) for row in connection.execute(query)]

    def created_version(self, env: str, secret: str, version: str) -> Rotation | None:
        """The rotation that made `version` of a secret, if one did."""
        query = select(table).where(
            table.c.env == env, table.c.secret == secret, table.c.new_version == version
        )
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else _rotation(row)

    def open(
        self,
        env: str,
        secret: str,
        *,
        trigger: str,
        retire_policy: str,
        no_grace: bool = False,
        late: bool = False,
        claim: SlotClaim | None = None,
    ) -> Opened | None:
        """Open a rotation of a secret, or answer the one that holds it already.

        With `claim`, the schedule moves on in the same transaction; None means
        another process moved it first and nothing was opened.
        """
        now = self.clock.now()
        with self.engine.begin() as connection:
            self._ensure_secret(connection, env, secret, now)
            if claim is not None and not self._claim_slot(connection, env, secret,
                                                          claim, now):  # fmt: skip
                return None
            rotation = Rotation(
                id=str(uuid.uuid4()),
                env=env,
                secret=secret,
                trigger=trigger,
                state=State.RUNNING,
                step=Step.CREATE,
                retire_policy=retire_policy,
                created_at=now,
                updated_at=now,
                next_attempt_at=now,
                late=late,
                no_grace=no_grace,
                slot_at=claim.slot if claim else None,
            )
            taken = connection.execute(
                update(secrets_table)
                .where(
                    _secret_key(env, secret), secrets_table.c.active_rotation.is_(None)
                )
                .values(active_rotation=rotation.id, updated_at=utc(now))
            ).rowcount
            if not taken:
                holder = connection.execute(
                    select(table).join(
                        secrets_table,
                        and_(
                            secrets_table.c.active_rotation == table.c.id,
                            _secret_key(env, secret),
                        ),
                    )
                ).first()
                if holder is not None:
                    return Opened(_rotation(holder), created=False)
                # The holder's record is gone (cannot happen through this
                # module); take the secret over rather than block for ever.
                connection.execute(
                    update(secrets_table)
                    .where(_secret_key(env, secret))
                    .values(active_rotation=rotation.id)
                )
            connection.execute(table.insert().values(**_columns(rotation)))
        return Opened(rotation, created=True)

    def claim(
        self, rotation_id: str, owner: str, lease_seconds: float
    ) -> Rotation | None:
        """Take the lease of a rotation; None when another process holds it."""
        now = self.clock.now()
        with self.engine.begin() as connection:
            taken = connection.execute(
                update(table)
                .where(
                    table.c.id == rotation_id,
                    or_(
                        table.c.lease_owner.is_(None),
                        table.c.lease_owner == owner,
                        table.c.lease_until < utc(now),
                    ),
                )
                .values(lease_owner=owner, lease_until=utc(now + lease_seconds))
            ).rowcount
            if not taken:
                return None
            row = connection.execute(
                select(table).where(table.c.id == rotation_id)
            ).one()
        return _rotation(row)

    def save(
        self,
        rotation: Rotation,
        owner: str,
        lease_seconds: float,
        *,
        secret: Mapping[str, Any] | None = None,
        release_secret: bool = False,
        others_in_grace_until: float | None = None,
    ) -> Rotation:
        """Write `rotation` back and renew its lease. Raises LeaseLost.

        `secret` updates the secret's row; `release_secret` lets the next
        rotation of the secret open; `others_in_grace_until` shortens the grace
        of older rotations of the secret (their version stopped being previous).
        """
        now = self.clock.now()
        saved = rotation.replace(
            updated_at=now, lease_owner=owner, lease_until=now + lease_seconds
        )
        columns = _columns(saved)
        if not saved.no_grace:
            # Demanded meanwhile without the lease: it stays.
            columns["no_grace"] = table.c.no_grace
        with self.engine.begin() as connection:
            changed = connection.execute(
                update(table)
                .where(table.c.id == rotation.id, table.c.lease_owner == owner)
                .values(**columns)
            ).rowcount
            if not changed:
                raise LeaseLost(rotation.id)
            if not saved.no_grace:
                demanded = connection.execute(
                    select(table.c.no_grace).where(table.c.id == rotation.id)
                ).scalar_one()
                saved = saved.replace(no_grace=bool(demanded))
            values = dict(secret or {})
            if release_secret:
                connection.execute(
                    update(secrets_table)
                    .where(
                        _secret_key(rotation.env, rotation.secret),
                        secrets_table.c.active_rotation == rotation.id,
                    )
                    .values(active_rotation=None, updated_at=utc(now))
                )
            if values:
                connection.execute(
                    update(secrets_table)
                    .where(_secret_key(rotation.env, rotation.secret))
                    .values(**_times(values), updated_at=utc(now))
                )
            if others_in_grace_until is not None:
                connection.execute(
                    update(table)
                    .where(
                        table.c.env == rotation.env,
                        table.c.secret == rotation.secret,
                        table.c.id != rotation.id,
                        table.c.state == State.GRACE.value,
                        table.c.grace_until > utc(others_in_grace_until),
                    )
                    .values(grace_until=utc(others_in_grace_until))
                )
        return saved

    def demand_no_grace(self, rotation_id: str) -> None:
        """Make a rotation retire its previous version at once, lease or not.

        The run holding it retires the version as soon as it has finished; a
        rotation already in its grace becomes due for the retirement worker.
        """
        now = utc(self.clock.now())
        in_grace = and_(table.c.state == State.GRACE.value, table.c.grace_until > now)
        with self.engine.begin() as connection:
            connection.execute(
                update(table)
                .where(table.c.id == rotation_id)
                .values(
                    no_grace=true(),
                    grace_until=case((in_grace, now), else_=table.c.grace_until),
                )
            )

    def release(self, rotation_id: str, owner: str) -> None:
        """Give the lease back so that any process may run it next."""
        with self.engine.begin() as connection:
            connection.execute(
                update(table)
                .where(table.c.id == rotation_id, table.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )

    def runnable(self, limit: int = 100) -> list[str]:
        """Rotations due to run whose lease is free or expired."""
        now = utc(self.clock.now())
        query = (
            select(table.c.id)
            .where(
                table.c.state.in_([state.value for state in RUNNABLE]),
                table.c.next_attempt_at <= now,
                or_(table.c.lease_until.is_(None), table.c.lease_until < now),
            )
            .order_by(table.c.next_attempt_at)
            .limit(limit)
        )
        with self.engine.connect() as connection:
            return list(connection.execute(query).scalars())

    def in_grace(self, limit: int = 500) -> list[Rotation]:
        """Finished rotations whose previous version is not retired yet."""
        now = utc(self.clock.now())
        query = (
            select(table)
            .where(
                table.c.state == State.GRACE.value,
                or_(table.c.lease_until.is_(None), table.c.lease_until < now),
            )
            .order_by(table.c.grace_until)
            .limit(limit)
        )
        with self.engine.connect() as connection:
            return [_rotation(row) for row in connection.execute(query)]

    def schedules(self, env: str) -> dict[str, Row[Any]]:
        """Every secret row of an environment, by secret name."""
        query = select(secrets_table).where(secrets_table.c.env == env)
        with self.engine.connect() as connection:
            return {row.secret: row for row in connection.execute(query)}

    def all_secrets(self) -> list[Row[Any]]:
        with self.engine.connect() as connection:
            return list(connection.execute(select(secrets_table)))

    def plan(
        self, env: str, secret: str, spec: str | None, slot: float | None,
        due: float | None, *, replacing: str | None,
    ) -> None:  # fmt: skip
        """Set a secret's schedule, unless another process changed it first."""
        now = self.clock.now()
        values = {
            "spec": spec,
            "slot_at": None if slot is None else utc(slot),
            "due_at": None if due is None else utc(due),
            "updated_at": utc(now),
        }
        with self.engine.begin() as connection:
            self._ensure_secret(connection, env, secret, now)
            spec_column = secrets_table.c.spec
            connection.execute(
                update(secrets_table)
                .where(
                    _secret_key(env, secret),
                    spec_column.is_(None) if replacing is None
                    else spec_column == replacing,
                )
                .values(**values)
            )  # fmt: skip

    def advance(self, env: str, secret: str, claim: SlotClaim) -> bool:
        """Move a schedule on without opening a rotation (a missed slot)."""
        with self.engine.begin() as connection:
            return self._claim_slot(connection, env, secret, claim, self.clock.now())

    def _ensure_secret(
        self, connection: Connection, env: str, secret: str, now: float
    ) -> None:
        connection.execute(
            self._insert(secrets_table)
            .values(env=env, secret=secret, failures_in_row=0, updated_at=utc(now))
            .on_conflict_do_nothing(index_elements=["env", "secret"])
        )

    def _claim_slot(
        self, connection: Connection, env: str, secret: str, claim: SlotClaim,
        now: float,
    ) -> bool:  # fmt: skip
        return bool(
            connection.execute(
                update(secrets_table)
                .where(
                    _secret_key(env, secret),
                    secrets_table.c.spec == claim.spec,
                    secrets_table.c.slot_at == utc(claim.slot),
                )
                .values(
                    slot_at=utc(claim.next_slot),
                    due_at=utc(claim.next_due),
                    updated_at=utc(now),
                )
            ).rowcount
        )


def _secret_key(env: str, secret: str) -> Any:
    return and_(secrets_table.c.env == env, secrets_table.c.secret == secret)


def _columns(rotation: Rotation) -> dict[str, Any]:
    values = {
        field.name: getattr(rotation, field.name)
        for field in dataclasses.fields(rotation)
    }
    values["state"] = rotation.state.value
    values["step"] = rotation.step.value
    return _times(values)


def _times(values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: utc(value)
        if isinstance(value, int | float)
        and key.endswith(("_at", "_until", "_since"))
        and not isinstance(value, bool)
        else value
        for key, value in values.items()
    }


def _rotation(row: Row[Any]) -> Rotation:
    values = dict(row._mapping)
    for key in _TIMES:
        moment: datetime | None = values.get(key)
        values[key] = None if moment is None else moment.timestamp()
    values["state"] = State(values["state"])
    values["step"] = Step(values["step"])
    return Rotation(**values)
