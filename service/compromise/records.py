"""Compromise records in the store: opened, announced, finished, read again.

A record is opened before the response changes anything, so a response that
fails half-way is still on file. `announce` tells every other broker process
in the same transaction that sets `announced_at` (service/store/notify.py);
processes that missed the message find the record by `announced_since`.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import Engine, insert, select, update

from service.clock import Clock, utc
from service.store.compromise_tables import compromises as table
from service.store.notify import notify

MESSAGE_TYPE: Final = "compromise"
_WIDTHS: Final = {"reason": 256, "actor": 128}


class Kind(StrEnum):
    """What was compromised."""

    SECRET = "secret"  # noqa: S105 (a kind, not a secret)
    SERVICE = "service"


class State(StrEnum):
    """How far a response has come."""

    RESPONDING = "responding"
    # The compromised version is disabled (and revoked upstream), or the
    # service disabled; its tokens are revoked.
    CONTAINED = "contained"
    # Tokens are revoked, but the emergency rotation waits on a step: the
    # rotation worker finishes it and retires the version the moment it can.
    ROTATING = "rotating"
    # Tokens are revoked, but the rotation stopped for a person: the
    # compromised version is still live.
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Compromise:
    """One compromise response; times are epoch seconds.

    `detail` holds what the response did, kind by kind (the rotation, the
    credentials revoked, ...): names, versions and ids, never a value.
    """

    id: str
    env: str
    kind: Kind
    subject: str
    reason: str
    actor: str
    created_at: float
    state: State = State.RESPONDING
    version: str | None = None
    since: float | None = None
    announced_at: float | None = None
    finished_at: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)


class CompromiseStore:
    """Reads and writes the `compromises` table of every environment."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    def open(
        self,
        env: str,
        kind: Kind,
        subject: str,
        *,
        reason: str,
        actor: str,
        version: str | None = None,
        since: float | None = None,
    ) -> Compromise:
        """Store a new response, before it acts, and answer it."""
        opened = Compromise(
            id=str(uuid.uuid4()),
            env=env,
            kind=kind,
            subject=subject,
            reason=reason[: _WIDTHS["reason"]],
            actor=actor[: _WIDTHS["actor"]],
            created_at=self._clock.now(),
            version=version,
            since=since,
        )
        with self._engine.begin() as connection:
            connection.execute(insert(table).values(**_row(opened)))
        return opened

    def announce(self, compromise: Compromise) -> Compromise:
        """Tell every other process, once the announcement is committed."""
        now = self._clock.now()
        announced = dataclasses.replace(compromise, announced_at=now)
        with self._engine.begin() as connection:
            connection.execute(
                update(table)
                .where(table.c.id == compromise.id)
                .values(announced_at=utc(now))
            )
            notify(
                connection,
                {"type": MESSAGE_TYPE, "env": compromise.env, "id": compromise.id},
            )
        return announced

    def finish(self, compromise: Compromise, state: State, **detail: Any) -> Compromise:
        """Record how the response ended and what it did."""
        now = self._clock.now()
        finished = dataclasses.replace(
            compromise,
            state=state,
            finished_at=now,
            detail={**compromise.detail, **detail},
        )
        with self._engine.begin() as connection:
            connection.execute(
                update(table)
                .where(table.c.id == compromise.id)
                .values(
                    state=finished.state.value,
                    finished_at=utc(now),
                    detail=_json(finished.detail),
                )
            )
        return finished

    def get(self, env: str, compromise_id: str) -> Compromise | None:
        query = select(table).where(table.c.id == compromise_id, table.c.env == env)
        with self._engine.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else _compromise(row)

    def latest(
        self,
        env: str,
        *,
        kind: Kind | None = None,
        subject: str | None = None,
        limit: int = 20,
    ) -> list[Compromise]:
        """The newest responses of an environment, newest first."""
        query = select(table).where(table.c.env == env)
        if kind is not None:
            query = query.where(table.c.kind == kind.value)
        if subject is not None:
            query = query.where(table.c.subject == subject)
        query = query.order_by(table.c.created_at.desc()).limit(limit)
        with self._engine.connect() as connection:
            return [_compromise(row) for row in connection.execute(query)]

    def announced_since(self, envs: Collection[str], since: float) -> list[Compromise]:
        """Responses of `envs` announced at or after `since`."""
        query = select(table).where(
            table.c.env.in_(sorted(envs)), table.c.announced_at >= utc(since)
        )
        with self._engine.connect() as connection:
            return [_compromise(row) for row in connection.execute(query)]


def _row(compromise: Compromise) -> dict[str, Any]:
    return {
        "id": compromise.id,
        "env": compromise.env,
        "kind": compromise.kind.value,
        "subject": compromise.subject,
        "version": compromise.version,
        "reason": compromise.reason,
        "actor": compromise.actor,
        "created_at": utc(compromise.created_at),
        "since": _time(compromise.since),
        "announced_at": _time(compromise.announced_at),
        "finished_at": _time(compromise.finished_at),
        "state": compromise.state.value,
        "detail": _json(compromise.detail),
    }


def _compromise(row: Any) -> Compromise:
    return Compromise(
        id=row.id,
        env=row.env,
        kind=Kind(row.kind),
        subject=row.subject,
        reason=row.reason,
        actor=row.actor,
        created_at=row.created_at.timestamp(),
        state=State(row.state),
        version=row.version,
        since=_epoch(row.since),
        announced_at=_epoch(row.announced_at),
        finished_at=_epoch(row.finished_at),
        detail=json.loads(row.detail),
    )


def _json(detail: dict[str, Any]) -> str:
    return json.dumps(detail, sort_keys=True, separators=(",", ":"))


def _time(moment: float | None) -> datetime | None:
    return None if moment is None else utc(moment)


def _epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()
