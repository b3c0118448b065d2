"""Who a compromise exposed: the reads in its report, and the tokens revoked.

`refresh_reads` copies into the report the part of the read aggregate
(`rotation_consumers`) that the compromise concerns: for a secret, every
service's reads of the compromised version; for a service, every secret and
version it read last within the window. Every process copies again after
flushing its own reads, so the report ends up holding all of them; counts only
grow, so a later copy never takes one back.

`new_readers` are the live tokens that read a compromised version and are not
in the report yet; `add` puts them in once they are revoked. Callers take
`exclusive` around the two, so that two processes never revoke (and audit)
the same token twice.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Engine, case, select, text
from sqlalchemy.dialects import postgresql, sqlite

from service.clock import Clock, utc
from service.compromise.records import Compromise, Kind
from service.rotation.token_reads import UNLISTED
from service.store.compromise_tables import compromise_reads, compromise_tokens
from service.store.compromise_tables import token_reads as token_table
from service.store.rotation_tables import rotation_consumers as consumers

TOKEN: Final = "token"  # noqa: S105 (a kind of revocation, not a secret)
SERVICE: Final = "service"


@dataclass(frozen=True, slots=True)
class Read:
    """What one service read of one version, all told: first, last and count."""

    secret: str
    version: str
    service: str
    first_read_at: float
    last_read_at: float
    reads: int


@dataclass(frozen=True, slots=True)
class Reader:
    """A live token that read a compromised version (`jti` UNLISTED: the
    service's tokens the reading process could not list)."""

    service: str
    jti: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class Revoked:
    """What a compromise revoked: a token (`token`, by jti) or every token of a
    service issued until `revoked_at` (`service`, by watermark)."""

    kind: str
    subject: str
    service: str
    expires_at: float
    revoked_at: float


class Exposure:
    """The exposure side of compromise reports, for every environment."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock
        self._local = threading.Lock()
        dialect = sqlite if engine.dialect.name == "sqlite" else postgresql
        self._insert = dialect.insert

    def refresh_reads(self, compromise: Compromise) -> int:
        """Copy the reads the compromise concerns into its report; answer how many."""
        query = select(consumers).where(consumers.c.env == compromise.env)
        if compromise.kind is Kind.SECRET:
            query = query.where(
                consumers.c.secret == compromise.subject,
                consumers.c.version == compromise.version,
            )
        else:
            query = query.where(
                consumers.c.service == compromise.subject,
                consumers.c.last_read_at >= utc(compromise.since or 0.0),
            )
        with self._engine.begin() as connection:
            rows = [
                {
                    "compromise_id": compromise.id,
                    "secret": row.secret,
                    "version": row.version,
                    "service": row.service,
                    "first_read_at": row.first_read_at,
                    "last_read_at": row.last_read_at,
                    "reads": row.reads,
                }
                for row in connection.execute(query)
            ]
            if rows:
                connection.execute(self._upsert_reads(), rows)
        return len(rows)

    def reads(self, compromise_id: str) -> list[Read]:
        table = compromise_reads
        query = (
            select(table)
            .where(table.c.compromise_id == compromise_id)
            .order_by(table.c.secret, table.c.version, table.c.service)
        )
        with self._engine.connect() as connection:
            return [
                Read(
                    row.secret,
                    row.version,
                    row.service,
                    row.first_read_at.timestamp(),
                    row.last_read_at.timestamp(),
                    int(row.reads),
                )
                for row in connection.execute(query)
            ]

    def new_readers(self, compromise: Compromise) -> list[Reader]:
        """Live tokens that read the compromised version and are not in the
        report yet, oldest expiry first."""
        now = utc(self._clock.now())
        query = (
            select(token_table.c.service, token_table.c.jti, token_table.c.expires_at)
            .where(
                token_table.c.env == compromise.env,
                token_table.c.secret == compromise.subject,
                token_table.c.version == compromise.version,
                token_table.c.expires_at > now,
            )
            .order_by(token_table.c.expires_at)
        )
        with self._engine.connect() as connection:
            found = connection.execute(query).all()
        known = {(r.kind, r.subject) for r in self.revoked(compromise.id)}
        readers = [Reader(row.service, row.jti, row.expires_at.timestamp())
                   for row in found]  # fmt: skip
        return [r for r in readers if _revocation_key(r) not in known]

    def add(self, compromise_id: str, revoked: Sequence[Revoked]) -> None:
        """Put revoked tokens and services into the report (once each)."""
        if not revoked:
            return
        rows = [
            {
                "compromise_id": compromise_id,
                "kind": item.kind,
                "subject": item.subject,
                "service": item.service,
                "expires_at": utc(item.expires_at),
                "revoked_at": utc(item.revoked_at),
            }
            for item in revoked
        ]
        statement = self._insert(compromise_tokens).on_conflict_do_nothing(
            index_elements=["compromise_id", "kind", "subject"]
        )
        with self._engine.begin() as connection:
            connection.execute(statement, rows)

    def revoked(self, compromise_id: str) -> list[Revoked]:
        table = compromise_tokens
        query = (
            select(table)
            .where(table.c.compromise_id == compromise_id)
            .order_by(table.c.kind, table.c.service, table.c.subject)
        )
        with self._engine.connect() as connection:
            return [
                Revoked(
                    row.kind,
                    row.subject,
                    row.service,
                    row.expires_at.timestamp(),
                    row.revoked_at.timestamp(),
                )
                for row in connection.execute(query)
            ]

    @contextmanager
    def exclusive(self, compromise_id: str) -> Iterator[None]:
        """One sweep of a compromise at a time: in this process, and on
        PostgreSQL in every process (a transaction-scoped advisory lock, let go
        at the end even when the process dies).

        On SQLite, processes on one file may overlap; at worst a token is then
        revoked and audited twice, which changes nothing else.
        """
        with self._local:
            if self._engine.dialect.name != "postgresql":
                yield
                return
            with self._engine.begin() as connection:
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                    {"key": f"tokenbroker compromise {compromise_id}"},
                )
                yield

    def _upsert_reads(self) -> Any:
        table = compromise_reads
        statement = self._insert(table)
        return statement.on_conflict_do_update(
            index_elements=["compromise_id", "secret", "version", "service"],
            set_={
                "first_read_at": case(
                    (
                        statement.excluded.first_read_at < table.c.first_read_at,
                        statement.excluded.first_read_at,
                    ),
                    else_=table.c.first_read_at,
                ),
                "last_read_at": case(
                    (
                        statement.excluded.last_read_at > table.c.last_read_at,
                        statement.excluded.last_read_at,
                    ),
                    else_=table.c.last_read_at,
                ),
                "reads": case(
                    (
                        statement.excluded.reads > table.c.reads,
                        statement.excluded.reads,
                    ),
                    else_=table.c.reads,
                ),
            },
        )


def _revocation_key(reader: Reader) -> tuple[str, str]:
    if reader.jti == UNLISTED:
        return SERVICE, reader.service
    return TOKEN, reader.jti
