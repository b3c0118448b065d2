"""The audit log: every access and decision, committed before anyone hears of it.

Callers hand an event to `record` (from a thread) or `submit` (from the event
loop) and wait until it is committed: a request whose record cannot be committed
fails with `AuditUnavailable` (503), so nothing happens unrecorded.

One writer thread per process appends records (group commit): while it commits
one transaction, new events queue up, and the next transaction takes all of
them at once. Concurrent requests then share one commit instead of paying one
each, which keeps the secret-read path fast. Appending locks the chain's head
row (`audit_heads`), so writers in several processes take turns and each
environment's chain stays one line (service/audit_chain.py).

Events carry names, ids, versions and counts: never a value, a client secret or
a token (a token's `jti` is its name).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from service.audit_chain import AuditEvent, AuditRecord, canonical, chain, timestamp
from service.clock import Clock
from service.errors import TokenBrokerError
from service.store.audit_tables import audit_heads, audit_records

log = structlog.get_logger(__name__)

MAX_BATCH = 512
WAIT_SECONDS = 10.0
# Under concurrent load the writer waits up to this long after the first event
# of a batch, so that one commit carries many requests' records: a commit costs
# far more than a record. It stops waiting as soon as every request the app is
# serving has its record in the batch, since no other record can come before
# the commit then, and the process would only sit idle. An idle broker (a batch
# of one) commits at once.
GATHER_SECONDS = 0.003
# Deferred events (`defer`) that could not be committed are tried again this
# often, and at most this many are kept: past it the oldest is dropped, logged.
RETRY_SECONDS = 1.0
MAX_DEFERRED = 10_000
GENESIS = "0" * 64
# Column widths of audit_records: longer text is cut, never refused, so that one
# odd field cannot fail a whole batch of other requests' records.
_WIDTHS = {"action": 64, "outcome": 32, "actor": 128, "target": 512,
           "version": 128, "request_id": 64, "source": 64}  # fmt: skip


class AuditUnavailable(TokenBrokerError):
    """The audit log cannot commit records now; the request was not completed."""

    status = 503
    code = "audit_unavailable"


@dataclass(slots=True)
class _Pending:
    """An event waiting for its commit, and who waits: a thread or a coroutine."""

    event: AuditEvent
    done: Future[AuditRecord] | None = None
    waiter: asyncio.Future[AuditRecord] | None = None


_STOP = object()


class AuditLog:
    """Appends events to their environment's chain, in batches, in one thread."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        *,
        max_batch: int = MAX_BATCH,
        wait_seconds: float = WAIT_SECONDS,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._max_batch = max_batch
        self._wait = wait_seconds
        self._on_commit = on_commit
        self._queue: queue.SimpleQueue[_Pending | object] = queue.SimpleQueue()
        self._closed = False
        self._busy = False
        # Requests the app is serving (`request_started`/`request_finished`,
        # in the event loop), and the writer's signal that all of them wait on
        # the batch it is gathering.
        self._serving = 0
        self._gathering = False
        self._all_waiting = threading.Event()
        # Whether the latest commit failed: readiness then tries a write.
        self._failing = False
        # Deferred events not committed yet, oldest first (the writer's alone).
        self._deferred: deque[AuditEvent] = deque()
        self._thread = threading.Thread(
            target=self._run, name="tokenbroker-audit", daemon=True
        )
        self._thread.start()

    def record(
        self,
        env: str,
        action: str,
        outcome: str = "ok",
        **fields: Any,
    ) -> AuditRecord:
        """Append an event and return once it is committed.

        `fields` are `actor`, `target`, `version`, `request_id`, `source`;
        any other keyword goes into the record's detail. For threads only: in
        the event loop, await `submit`. Raises AuditUnavailable.
        """
        done: Future[AuditRecord] = Future()
        self._enqueue(_Pending(self.event(env, action, outcome, **fields), done))
        try:
            return done.result(timeout=self._wait)
        except FutureTimeout:
            raise _unavailable() from None

    async def submit(
        self,
        env: str,
        action: str,
        outcome: str = "ok",
        **fields: Any,
    ) -> AuditRecord:
        """`record` for the event loop: awaits the batch's commit."""
        event = self.event(env, action, outcome, **fields)
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[AuditRecord] = loop.create_future()
        self._enqueue(_Pending(event, None, waiter))
        self._wake_if_all_waiting()
        # One timer on the waiter rather than asyncio.timeout around the await:
        # this runs on every request, and a timeout scope costs several times
        # as much (it reschedules, cancels and uncancels the task).
        timer = loop.call_later(self._wait, _give_up, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()

    def defer(self, env: str, action: str, outcome: str = "ok", **fields: Any) -> None:
        """Append an event as soon as the store takes records, without waiting.

        For what has happened already and must not go unrecorded when the
        store is down: the event keeps the time it was made at, and is tried
        again every RETRY_SECONDS, in a transaction of its own so it can never
        fail other requests' records. Kept in memory only: a restart before
        the store is back loses it. Raises AuditUnavailable once closed.
        """
        self._enqueue(_Pending(self.event(env, action, outcome, **fields)))

    def request_started(self) -> None:
        """A request has come in (called by the request middleware)."""
        self._serving += 1

    def request_finished(self) -> None:
        """A request has been answered: the batch may now hold every record
        that can come."""
        self._serving -= 1
        self._wake_if_all_waiting()

    def _wake_if_all_waiting(self) -> None:
        # Read without a lock: a stale count only ends a wait a little early
        # or lets it run to GATHER_SECONDS, never loses a record.
        if self._gathering and self._queue.qsize() + 1 >= self._serving:
            self._all_waiting.set()

    def event(self, env: str, action: str, outcome: str, **fields: Any) -> AuditEvent:
        """An event stamped now. Raises TypeError for detail that is not JSON."""
        return make_event(self._clock, env, action, outcome, **fields)

    def check(self) -> None:
        """Raise AuditUnavailable unless records can be committed now.

        Cheap while commits succeed: the writer thread is alive and the chain's
        tables answer a read. After a failed commit, an append that is rolled
        back shows whether the store takes records again.
        """
        if self._closed or not self._thread.is_alive():
            raise AuditUnavailable("the audit writer is not running")
        try:
            with self._engine.connect() as connection:
                connection.execute(_PEEK_HEADS).all()
                connection.execute(_PEEK_RECORDS).all()
                if self._failing:
                    connection.execute(_APPEND, [_probe_row(self._clock)])
                connection.rollback()
        except SQLAlchemyError as error:
            raise _unavailable() from error

    def close(self) -> None:
        """Commit what is queued, then stop the writer."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout=self._wait)

    def _enqueue(self, pending: _Pending) -> None:
        if self._closed:
            raise _unavailable()
        self._queue.put(pending)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(
                    timeout=RETRY_SECONDS if self._deferred else None
                )
            except queue.Empty:
                self._commit_deferred()
                continue
            if first is _STOP:
                self._commit_deferred()
                break
            batch = [first]
            if self._busy:
                self._gather()
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            self._busy = len(batch) > 1
            waited = []
            for item in batch:
                if not isinstance(item, _Pending):
                    continue
                if item.done is None and item.waiter is None:
                    self._keep_deferred(item.event)
                else:
                    waited.append(item)
            self._commit_deferred()
            if waited:
                self._commit(waited)

    def _keep_deferred(self, event: AuditEvent) -> None:
        if len(self._deferred) >= MAX_DEFERRED:
            dropped = self._deferred.popleft()
            log.error(
                "audit_deferred_dropped",
                env=dropped.env,
                action=dropped.action,
                request_id=dropped.request_id,
            )
        self._deferred.append(event)

    def _commit_deferred(self) -> None:
        """Commit the deferred events in a transaction of their own; keep them
        for the next try when the store refuses."""
        if not self._deferred:
            return
        events = list(self._deferred)
        try:
            with self._engine.begin() as connection:
                append(connection, events)
        except Exception as error:
            log.warning(
                "audit_deferred_not_committed",
                error_type=type(error).__name__,
                records=len(events),
            )
            return
        self._deferred.clear()
        log.info("audit_deferred_committed", records=len(events))

    def _gather(self) -> None:
        """Wait until every request being served has queued its record, or
        GATHER_SECONDS have passed."""
        self._all_waiting.clear()
        self._gathering = True
        self._wake_if_all_waiting()
        self._all_waiting.wait(GATHER_SECONDS)
        self._gathering = False

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            with self._engine.begin() as connection:
                written: Sequence[AuditRecord | None] = append(
                    connection, [pending.event for pending in batch]
                )
        except Exception as error:
            # Whatever broke the store (a lost connection, a full disk, a dropped
            # table), every request of the batch must fail rather than go on
            # unrecorded; the writer itself keeps running for the next batch.
            log.error(
                "audit_commit_failed",
                error_type=type(error).__name__,
                records=len(batch),
            )
            written = [None] * len(batch)
        self._failing = bool(written) and written[0] is None
        _settle(batch, written)
        if self._on_commit is not None and written and written[0] is not None:
            self._on_commit(len(batch))


def _settle(batch: list[_Pending], written: Sequence[AuditRecord | None]) -> None:
    """Tell every waiter how its event ended: its record, or AuditUnavailable.

    Coroutines of one event loop are woken by one callback for the whole batch,
    rather than one thread-safe wake-up each.
    """
    by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = defaultdict(list)
    for pending, record in zip(batch, written, strict=True):
        if pending.done is not None:
            if record is None:
                pending.done.set_exception(_unavailable())
            else:
                pending.done.set_result(record)
        elif pending.waiter is not None:
            by_loop[pending.waiter.get_loop()].append((pending.waiter, record))
    for loop, outcomes in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, outcomes)
        except RuntimeError:
            # The loop has closed: nobody is left waiting on it.
            continue


_Outcome = tuple["asyncio.Future[AuditRecord]", "AuditRecord | None"]


def _give_up(waiter: asyncio.Future[AuditRecord]) -> None:
    """The commit took longer than the wait: the request fails with 503."""
    if not waiter.done():
        waiter.set_exception(_unavailable())


def _resolve(outcomes: list[_Outcome]) -> None:
    for waiter, record in outcomes:
        if waiter.done():
            continue  # its request timed out and answered 503 already
        if record is None:
            waiter.set_exception(_unavailable())
        else:
            waiter.set_result(record)


def make_event(
    clock: Clock, env: str, action: str, outcome: str, **fields: Any
) -> AuditEvent:
    """An event stamped now (see `AuditLog.record` for `fields`).

    Raises TypeError for detail that is not JSON: in the caller, not in the
    writer's batch, where it would fail other requests' records.
    """
    known = {
        key: _cut(key, fields.pop(key, None))
        for key in ("actor", "target", "version", "request_id", "source")
    }
    detail = {key: value for key, value in fields.items() if value is not None}
    canonical(detail)
    return AuditEvent(
        env=env,
        action=str(_cut("action", action)),
        outcome=str(_cut("outcome", outcome)),
        at=timestamp(clock.now()),
        detail=detail,
        **known,
    )


def record_now(
    engine: Engine,
    clock: Clock,
    env: str,
    action: str,
    outcome: str = "ok",
    **fields: Any,
) -> AuditRecord:
    """Append one event in a transaction of its own, without a writer thread.

    For commands that touch the store directly (`tokenbroker bootstrap`).
    Raises AuditUnavailable when the store refuses it.
    """
    event = make_event(clock, env, action, outcome, **fields)
    try:
        with engine.begin() as connection:
            return append(connection, [event])[0]
    except SQLAlchemyError as error:
        log.error("audit_commit_failed", error_type=type(error).__name__, records=1)
        raise _unavailable() from error


def append(connection: Connection, events: Sequence[AuditEvent]) -> list[AuditRecord]:
    """Chain `events` onto their environments' heads inside `connection`'s
    transaction, and answer the records in the order of `events`.

    Heads are locked in environment order, so that two processes appending to
    the same environments never wait on each other in a circle.
    """
    by_env: dict[str, list[int]] = defaultdict(list)
    for index, event in enumerate(events):
        by_env[event.env].append(index)
    written: dict[int, AuditRecord] = {}
    for env in sorted(by_env):
        seq, prev_hash = _lock_head(connection, env)
        rows = []
        for index in by_env[env]:
            seq += 1
            record = chain(events[index], seq, prev_hash)
            prev_hash = record.hash
            written[index] = record
            rows.append(_row(record))
        connection.execute(_APPEND, rows)
        connection.execute(_MOVE_HEAD, {"head_env": env, "seq": seq, "hash": prev_hash})
    return [written[index] for index in range(len(events))]


# The writer runs these for every batch: built once, they cost SQLAlchemy only a
# cache lookup instead of a statement construction each time.
_ENSURE_HEAD = {
    dialect.__name__.rpartition(".")[2]: dialect.insert(audit_heads)
    .values(env=bindparam("env"), seq=0, hash=GENESIS)
    .on_conflict_do_nothing(index_elements=["env"])
    for dialect in (postgresql, sqlite)
}
_READ_HEAD = (
    select(audit_heads.c.seq, audit_heads.c.hash)
    .where(audit_heads.c.env == bindparam("env"))
    .with_for_update()
)
_APPEND = insert(audit_records)
_PEEK_HEADS = select(audit_heads.c.seq).limit(1)
_PEEK_RECORDS = select(audit_records.c.seq).limit(1)
_MOVE_HEAD = (
    update(audit_heads)
    .where(audit_heads.c.env == bindparam("head_env"))
    .values(seq=bindparam("seq"), hash=bindparam("hash"))
)


def _probe_row(clock: Clock) -> dict[str, Any]:
    """A record no environment has (no environment name is empty)."""
    event = make_event(clock, "", "readiness.probe", "ok")
    return _row(chain(event, 0, GENESIS))


def _lock_head(connection: Connection, env: str) -> tuple[int, str]:
    # On SQLite this first write also takes the database's write lock, before
    # the head is read, so the read can never be stale.
    connection.execute(_ENSURE_HEAD[connection.dialect.name], {"env": env})
    head = connection.execute(_READ_HEAD, {"env": env}).one()
    return int(head.seq), str(head.hash)


def _row(record: AuditRecord) -> dict[str, Any]:
    event = record.event
    return {
        "env": event.env,
        "seq": record.seq,
        "at": event.at,
        "action": event.action,
        "outcome": event.outcome,
        "actor": event.actor,
        "target": event.target,
        "version": event.version,
        "request_id": event.request_id,
        "source": event.source,
        "detail": canonical(event.detail).decode("utf-8"),
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


def _cut(key: str, value: object) -> str | None:
    if value is None:
        return None
    return str(value)[: _WIDTHS[key]]


def _unavailable() -> AuditUnavailable:
    return AuditUnavailable("the audit log cannot record this request; try again")


__all__ = ["AuditLog", "AuditUnavailable", "append", "make_event", "record_now"]
