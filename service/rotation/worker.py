"""The background thread that drives rotation in a broker process.

One pass (`tick`) opens due scheduled rotations, runs every rotation that is
due and whose lease is free, retires previous versions whose time is up, and
flushes the read aggregate when its interval has passed. A failure in one
phase is logged and the next phase still runs: the worker never dies of one
bad secret. While the audit log cannot record, no step can start: the first
rotation held ends its phase, since every other one would be held as well.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import structlog

from service.audit import AuditUnavailable
from service.clock import Clock
from service.rotation.consumers import ConsumerTracker
from service.rotation.machine import RotationMachine
from service.rotation.records import RotationStore
from service.rotation.retirement import Retirement
from service.rotation.scheduler import Scheduler
from service.rotation.settings import RotationSettings

log = structlog.get_logger(__name__)

T = TypeVar("T")


class RotationWorker:
    """Runs `tick` every `tick_seconds` in a daemon thread, until `stop`."""

    def __init__(
        self,
        store: RotationStore,
        scheduler: Scheduler,
        machine: RotationMachine,
        retirement: Retirement,
        consumers: ConsumerTracker,
        settings: RotationSettings,
        clock: Clock,
    ) -> None:
        self.store = store
        self.scheduler = scheduler
        self.machine = machine
        self.retirement = retirement
        self.consumers = consumers
        self.settings = settings
        self.clock = clock
        self._next_flush = clock.now() + settings.consumer_flush_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> None:
        """One pass over everything that is due now."""
        self._phase("schedule", self.scheduler.tick)
        for rotation_id in self._phase("find", self.store.runnable) or []:
            if self._stop.is_set():
                return
            try:
                self.machine.run(rotation_id)
            except AuditUnavailable:
                log.warning("rotation_held_for_audit", phase="run")
                break
            except Exception as error:
                _failed("run", error)
        self._phase("retire", self.retirement.retire_due)
        if self.clock.now() >= self._next_flush:
            self._next_flush = self.clock.now() + self.settings.consumer_flush_seconds
            self._phase("flush", self.consumers.flush)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, name="rotation-worker", daemon=True
        )
        self._thread.start()
        log.info("rotation_worker_started", tick_seconds=self.settings.tick_seconds)

    def stop(self) -> None:
        """Stop after the current step; flush the read aggregate one last time."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None
        self._phase("flush", self.consumers.flush)

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.tick_seconds):
            self.tick()

    def _phase(self, name: str, work: Callable[[], T]) -> T | None:
        try:
            return work()
        except AuditUnavailable:
            log.warning("rotation_held_for_audit", phase=name)
            return None
        except Exception as error:
            _failed(name, error)
            return None


def _failed(phase: str, error: Exception) -> None:
    # Logged by type only: an SDK's message may quote a request.
    log.error("rotation_worker_failed", phase=phase, error_type=type(error).__name__)
