"""Anonymous refusals in the audit: each its own record up to a rate, then a sum.

A refusal (401, 403, 429) of a caller the broker knows is always a record of
its own: a verified token, a client id the policy names, or a token another
environment served here verifies (a leaked one). An anonymous refusal (a token
that does not verify, a client id no policy names) costs nothing to send, so a
flood of them must not fill the chain. Per environment, each source address
has `anonymous_refusals_per_address` records and the environment as a whole
`anonymous_refusals_per_environment` (token buckets, under `rate_limits`).
Beyond them a refusal is counted instead, and the counts of each environment
become one `audit.refusals_summarised` record a minute: how many, when, for
which actions, and from which addresses (the busiest, by count).

Counts live in this process until `flush` records them: the app flushes every
few seconds, the broker at close. A summary that cannot be recorded is kept
and tried again.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import structlog
from starlette.concurrency import run_in_threadpool

from service.audit import AuditUnavailable
from service.audit_chain import timestamp
from service.clock import Clock
from service.limits import Buckets, RateLimitSettings

if TYPE_CHECKING:
    from service.audit import AuditLog

log = structlog.get_logger(__name__)

ACTION: Final = "audit.refusals_summarised"
SUMMARY_SECONDS: Final = 60.0
FLUSH_SECONDS: Final = 5.0
# Addresses named one by one in a summary; the rest are counted together.
NAMED_SOURCES: Final = 20
MAX_SOURCES: Final = 10_000


@dataclass(slots=True)
class _Counted:
    """The anonymous refusals of one environment not recorded one by one."""

    since: float
    until: float
    refusals: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)
    other_sources: int = 0

    def add(self, at: float, source: str | None, action: str) -> None:
        self.until = max(self.until, at)
        self.refusals += 1
        self.actions[action] += 1
        key = source or "unknown"
        if key in self.sources or len(self.sources) < MAX_SOURCES:
            self.sources[key] += 1
        else:
            self.other_sources += 1

    def merge(self, other: _Counted) -> None:
        self.since = min(self.since, other.since)
        self.until = max(self.until, other.until)
        self.refusals += other.refusals
        self.actions.update(other.actions)
        self.sources.update(other.sources)
        self.other_sources += other.other_sources

    def detail(self) -> dict[str, object]:
        named = dict(self.sources.most_common(NAMED_SOURCES))
        return {
            "refusals": self.refusals,
            "since": timestamp(self.since).isoformat(),
            "until": timestamp(self.until).isoformat(),
            "actions": dict(self.actions),
            "sources": named,
            "other_sources": self.other_sources
            + sum(self.sources.values())
            - sum(named.values()),
        }


class RefusalBudget:
    """Which anonymous refusals get a record of their own; the others, counted."""

    def __init__(self, settings: RateLimitSettings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self._buckets = Buckets(clock)
        self._lock = threading.Lock()
        self._counted: dict[str, _Counted] = {}

    def admit(self, env: str, source: str | None, action: str) -> bool:
        """True when this refusal is to be recorded; else it is counted."""
        per_env = self._settings.anonymous_refusals_per_environment
        per_address = self._settings.anonymous_refusals_per_address
        if self._buckets.wait(("env", env), per_env) == 0 and (
            self._buckets.take(("address", env, source), per_address) == 0
        ):
            self._buckets.take(("env", env), per_env)
            return True
        now = self._clock.now()
        with self._lock:
            counted = self._counted.setdefault(env, _Counted(now, now))
            counted.add(now, source, action)
        return False

    def flush(self, audit: AuditLog, *, everything: bool = False) -> int:
        """Record each summary whose minute is over (every one, with
        `everything`); answer how many were recorded."""
        due = self._take(everything)
        recorded = 0
        for env, counted in due.items():
            try:
                audit.record(env, ACTION, "refused", **counted.detail())
            except AuditUnavailable:
                self._put_back(env, counted)
                continue
            recorded += 1
            log.warning(
                "anonymous_refusals_summarised", env=env, refusals=counted.refusals
            )
        return recorded

    def _take(self, everything: bool) -> dict[str, _Counted]:
        now = self._clock.now()
        with self._lock:
            due = {
                env: counted
                for env, counted in self._counted.items()
                if everything or counted.since + SUMMARY_SECONDS <= now
            }
            for env in due:
                del self._counted[env]
        return due

    def _put_back(self, env: str, counted: _Counted) -> None:
        with self._lock:
            newer = self._counted.get(env)
            if newer is not None:
                counted.merge(newer)
            self._counted[env] = counted


async def flush_periodically(budget: RefusalBudget, audit: AuditLog) -> None:
    """Flush the budget's summaries every few seconds, until cancelled."""
    while True:
        await asyncio.sleep(FLUSH_SECONDS)
        await run_in_threadpool(budget.flush, audit)
