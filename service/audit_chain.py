"""The audit chain's arithmetic: canonical records, their hashes, and the proof.

Each record's hash is SHA-256 over the previous record's hash, a newline, and
the record's canonical JSON (sorted keys, no spaces, UTF-8). The first record of
an environment chains to `GENESIS`. Altering, removing or reordering any record
breaks the chain at that point; `verify` names the first record where it breaks.

The proof is recomputed from the stored columns, the same data an export hands
to a SIEM, so a record cannot be altered in one place and left intact in another.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, select

from service.store.audit_tables import audit_heads, audit_records

GENESIS = "0" * 64
PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """What happened, before it has a place in the chain.

    `detail` holds names, ids, versions and counts only: never a secret value,
    a client secret or a token (a token's `jti` is its name).
    """

    env: str
    action: str
    outcome: str
    at: datetime
    actor: str | None = None
    target: str | None = None
    version: str | None = None
    request_id: str | None = None
    source: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An event at its place in its environment's chain."""

    event: AuditEvent
    seq: int
    prev_hash: str
    hash: str

    def as_json(self) -> dict[str, Any]:
        """The record as exported: every hashed field, and the hashes."""
        return {**_fields(self.event, self.seq), "prev_hash": self.prev_hash,
                "hash": self.hash}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of `verify`: intact, or where and how the chain breaks."""

    env: str
    intact: bool
    records: int
    head_seq: int
    head_hash: str
    broken_seq: int | None = None
    problem: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "intact": self.intact,
            "records": self.records,
            "head": {"seq": self.head_seq, "hash": self.head_hash},
            "broken_seq": self.broken_seq,
            "problem": self.problem,
        }


def chain(event: AuditEvent, seq: int, prev_hash: str) -> AuditRecord:
    """The record `event` becomes as number `seq` after a record of `prev_hash`."""
    return AuditRecord(event, seq, prev_hash, record_hash(event, seq, prev_hash))


def record_hash(event: AuditEvent, seq: int, prev_hash: str) -> str:
    body = canonical(_fields(event, seq))
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + body).hexdigest()


def canonical(data: Mapping[str, Any]) -> bytes:
    """One byte string per value: sorted keys, no whitespace, UTF-8."""
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def timestamp(moment: float) -> datetime:
    """An aware UTC datetime at microsecond precision, as every store keeps it."""
    return datetime.fromtimestamp(round(moment, 6), tz=UTC)


def verify(engine: Engine, env: str) -> Verdict:
    """Walk an environment's chain from its first record to its head.

    Answers the first record whose number, link or hash is wrong, or a head
    that points past the last record (records removed from the end).
    """
    with engine.connect() as connection:
        head = connection.execute(
            select(audit_heads).where(audit_heads.c.env == env)
        ).first()
        expected_seq, prev_hash, count = 1, GENESIS, 0
        for record in records(connection, env):
            problem = _check(record, expected_seq, prev_hash)
            if problem is not None:
                broken = min(record.seq, expected_seq)
                return _broken(env, count, head, broken, problem)
            expected_seq, prev_hash, count = record.seq + 1, record.hash, count + 1
    head_seq = head.seq if head is not None else 0
    head_hash = head.hash if head is not None else GENESIS
    if head_seq != count or head_hash != prev_hash:
        problem = (
            f"the chain head names record {head_seq}, but the chain ends at "
            f"record {count}: records were removed or added past the head"
        )
        return _broken(env, count, head, count + 1, problem)
    return Verdict(env, True, count, head_seq, head_hash)


def records(
    connection: Connection, env: str, *, after: int = 0, limit: int | None = None
) -> Iterator[AuditRecord]:
    """An environment's records in chain order, read one page at a time."""
    left = limit
    while left is None or left > 0:
        page_size = PAGE_SIZE if left is None else min(PAGE_SIZE, left)
        rows = connection.execute(
            select(audit_records)
            .where(audit_records.c.env == env, audit_records.c.seq > after)
            .order_by(audit_records.c.seq)
            .limit(page_size)
        ).all()
        for row in rows:
            yield from_row(row)
        if len(rows) < page_size:
            return
        after = rows[-1].seq
        left = None if left is None else left - len(rows)


def from_row(row: Row[Any]) -> AuditRecord:
    event = AuditEvent(
        env=row.env,
        action=row.action,
        outcome=row.outcome,
        at=row.at,
        actor=row.actor,
        target=row.target,
        version=row.version,
        request_id=row.request_id,
        source=row.source,
        detail=json.loads(row.detail),
    )
    return AuditRecord(event, row.seq, row.prev_hash, row.hash)


def _fields(event: AuditEvent, seq: int) -> dict[str, Any]:
    return {
        "env": event.env,
        "seq": seq,
        "at": event.at.astimezone(UTC).isoformat(timespec="microseconds"),
        "action": event.action,
        "outcome": event.outcome,
        "actor": event.actor,
        "target": event.target,
        "version": event.version,
        "request_id": event.request_id,
        "source": event.source,
        "detail": dict(event.detail),
    }


def _check(record: AuditRecord, expected_seq: int, prev_hash: str) -> str | None:
    if record.seq != expected_seq:
        return f"record {expected_seq} is missing; the next one is {record.seq}"
    if record.prev_hash != prev_hash:
        return (
            f"record {record.seq} does not link to record {record.seq - 1}: "
            "one of the two was altered"
        )
    if record_hash(record.event, record.seq, record.prev_hash) != record.hash:
        return f"record {record.seq} was altered: its content does not match its hash"
    return None


def _broken(
    env: str, count: int, head: Row[Any] | None, seq: int, problem: str
) -> Verdict:
    return Verdict(
        env,
        False,
        count,
        head.seq if head is not None else 0,
        head.hash if head is not None else GENESIS,
        broken_seq=seq,
        problem=problem,
    )
