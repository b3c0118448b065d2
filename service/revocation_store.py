"""Revocations in the store: written once, announced, read back by every process.

`record` writes a revocation and, on PostgreSQL, announces it to the other
broker processes in the same transaction (service/store/notify.py), so the
announcement exists exactly when the revocation does. Processes that missed an
announcement find the row by `changed_since`, which reads by `recorded_at`.

A service's row is one row that changes: revoking again moves the watermark,
`disabled` stays set until the service is enabled, and each change counts up
`revision`. Token and key rows never change once written.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Any

from sqlalchemy import Engine, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import Select

from service.clock import Clock, utc
from service.revocation_set import Kind, Revocation
from service.store.notify import notify
from service.store.revocation_tables import revocations

BULK_ROWS = 5000
# A row is deleted this long after the last token it names expired, so that a
# process whose clock runs a little behind still finds it.
PRUNE_SLACK_SECONDS = 60.0
_WIDTHS = {"actor": 128, "reason": 256}


class RevocationStore:
    """Reads and writes the `revocations` table for every environment."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    def record(
        self,
        revocation: Revocation,
        *,
        actor: str | None,
        reason: str | None,
        enable: bool = False,
    ) -> Revocation:
        """Store a revocation and announce it; answer the state now stored.

        For a service, revoking keeps a `disabled` that was set before;
        `enable` clears it (and moves the watermark to now).
        """
        table = revocations
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        values = self._row(revocation, actor, reason)
        statement = dialect.insert(table).values(values)
        if revocation.kind is Kind.SERVICE:
            disabled = (
                statement.excluded.disabled
                if enable
                else or_(table.c.disabled, statement.excluded.disabled)
            )
            statement = statement.on_conflict_do_update(
                index_elements=["env", "kind", "subject"],
                set_={
                    "revoked_at": statement.excluded.revoked_at,
                    "expires_at": statement.excluded.expires_at,
                    "disabled": disabled,
                    "revision": table.c.revision + 1,
                    "recorded_at": statement.excluded.recorded_at,
                    "actor": statement.excluded.actor,
                    "reason": statement.excluded.reason,
                },
            )
        else:
            statement = statement.on_conflict_do_nothing(
                index_elements=["env", "kind", "subject"]
            )
        with self._engine.begin() as connection:
            row = connection.execute(statement.returning(*_COLUMNS)).one_or_none()
            if row is None:
                return revocation
            stored = _revocation(row)
            notify(connection, {"type": "revocation", **_message(stored)})
        return stored

    def record_many(
        self, found: Sequence[Revocation], *, actor: str | None, reason: str | None
    ) -> int:
        """Store many token or key revocations at once; answer how many.

        One announcement per environment tells the others to read the table.
        """
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(revocations).on_conflict_do_nothing(
            index_elements=["env", "kind", "subject"]
        )
        rows = [self._row(revocation, actor, reason) for revocation in found]
        with self._engine.begin() as connection:
            for start in range(0, len(rows), BULK_ROWS):
                connection.execute(statement, rows[start : start + BULK_ROWS])
            for env in sorted({revocation.env for revocation in found}):
                notify(connection, {"type": "bulk", "env": env})
        return len(rows)

    def current(self, envs: Collection[str]) -> Iterator[Revocation]:
        """Every revocation of `envs` that still matters now."""
        now = utc(self._clock.now())
        query = self._select(envs).where(
            or_(revocations.c.expires_at > now, revocations.c.disabled.is_(True))
        )
        with self._engine.connect() as connection:
            for row in connection.execution_options(yield_per=BULK_ROWS).execute(query):
                yield _revocation(row)

    def changed_since(self, envs: Collection[str], since: float) -> list[Revocation]:
        """Revocations of `envs` written or changed at or after `since`."""
        query = self._select(envs).where(revocations.c.recorded_at >= utc(since))
        with self._engine.connect() as connection:
            return [_revocation(row) for row in connection.execute(query)]

    def prune(self) -> int:
        """Delete the rows whose tokens have all expired; answer how many."""
        cutoff = utc(self._clock.now() - PRUNE_SLACK_SECONDS)
        with self._engine.begin() as connection:
            return connection.execute(
                delete(revocations).where(
                    revocations.c.expires_at < cutoff,
                    revocations.c.disabled.is_(False),
                )
            ).rowcount

    def _select(self, envs: Collection[str]) -> Select[Any]:
        return select(*_COLUMNS).where(revocations.c.env.in_(sorted(envs)))

    def _row(
        self, revocation: Revocation, actor: str | None, reason: str | None
    ) -> dict[str, Any]:
        return {
            "env": revocation.env,
            "kind": revocation.kind.value,
            "subject": revocation.subject,
            "revoked_at": utc(revocation.revoked_at),
            "expires_at": utc(revocation.expires_at),
            "disabled": revocation.disabled,
            "revision": revocation.revision,
            "recorded_at": utc(self._clock.now()),
            "actor": actor[: _WIDTHS["actor"]] if actor else None,
            "reason": reason[: _WIDTHS["reason"]] if reason else None,
        }


_COLUMNS = (
    revocations.c.env,
    revocations.c.kind,
    revocations.c.subject,
    revocations.c.revoked_at,
    revocations.c.expires_at,
    revocations.c.disabled,
    revocations.c.revision,
)


def _revocation(row: Any) -> Revocation:
    return Revocation(
        env=row.env,
        kind=Kind(row.kind),
        subject=row.subject,
        revoked_at=row.revoked_at.timestamp(),
        expires_at=row.expires_at.timestamp(),
        disabled=bool(row.disabled),
        revision=int(row.revision),
    )


def _message(revocation: Revocation) -> dict[str, Any]:
    return {
        "env": revocation.env,
        "kind": revocation.kind.value,
        "subject": revocation.subject,
        "revoked_at": revocation.revoked_at,
        "expires_at": revocation.expires_at,
        "disabled": revocation.disabled,
        "revision": revocation.revision,
    }


def from_message(message: dict[str, Any]) -> Revocation:
    """The revocation an announcement carries. Raises KeyError, ValueError."""
    return Revocation(
        env=str(message["env"]),
        kind=Kind(message["kind"]),
        subject=str(message["subject"]),
        revoked_at=float(message["revoked_at"]),
        expires_at=float(message["expires_at"]),
        disabled=bool(message["disabled"]),
        revision=int(message["revision"]),
    )
