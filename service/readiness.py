"""Readiness: the store, the audit log and every backend, checked at once, in time.

`probe` starts every check at the same moment and answers within its timeout
whatever the checks do: one that has not answered by then reports
`unavailable: timeout`, so a store that hangs cannot make an orchestrator's
probe hang with it. A check runs in a daemon thread of its own and is never
started twice: a probe that finds it still running from an earlier probe waits
for that run, so a hanging store holds one thread, not one per probe, and none
of the server's own.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text

from service.errors import TokenBrokerError

if TYPE_CHECKING:
    from service.broker import Broker

Check = Callable[[], object]
OK = "ok"
TIMED_OUT = "unavailable: timeout"


class Readiness:
    """Named checks, each passing unless it raises."""

    def __init__(self, checks: Mapping[str, Check], *, timeout: float) -> None:
        self.checks = dict(checks)
        self.timeout = timeout
        self._lock = threading.Lock()
        self._running: dict[str, Future[str]] = {}

    @classmethod
    def of(cls, broker: Broker) -> Readiness:
        """The store, the audit log, and every backend as `ENV/NAME`."""
        checks: dict[str, Check] = {
            "store": lambda: _select_one(broker.engine),
            "audit": broker.audit.check,
        }
        for environment in broker.environments.values():
            for name, backend in environment.backends.items():
                checks[f"{environment.name}/{name}"] = backend.check
        return cls(checks, timeout=broker.settings.readiness_timeout_seconds)

    async def probe(self) -> dict[str, str]:
        """Each check's `ok` or `unavailable: REASON`, within the timeout."""
        waiting = {name: asyncio.wrap_future(self._start(name)) for name in self.checks}
        done, _ = await asyncio.wait(waiting.values(), timeout=self.timeout)
        return {
            name: future.result() if future in done else TIMED_OUT
            for name, future in waiting.items()
        }

    def _start(self, name: str) -> Future[str]:
        with self._lock:
            running = self._running.get(name)
            if running is not None and not running.done():
                return running
            future: Future[str] = Future()
            self._running[name] = future
        threading.Thread(
            target=_run,
            args=(self.checks[name], future),
            name=f"readiness-{name}",
            daemon=True,
        ).start()
        return future


def _run(check: Check, future: Future[str]) -> None:
    try:
        check()
    except TokenBrokerError as error:
        future.set_result(f"unavailable: {error.code}")
    except Exception as error:  # Readiness reports any failure, it never raises.
        future.set_result(f"unavailable: {type(error).__name__}")
    else:
        future.set_result(OK)


def _select_one(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
