"""Fake rotation targets, and a way to kill a rotation mid-step."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field

from service.errors import BackendUnavailable
from service.rotation.generators import (
    ALPHABETS,
    Minted,
    RandomGenerator,
    RotationContext,
)
from service.sensitive import Sensitive
from tests.service.conftest import FakeClock


class Crash(BaseException):
    """The process dies here: nothing after it runs, no `except Exception` sees it."""


@dataclass
class FakeTarget:
    """A target that accepts one password at a time, as a database would.

    `accept_delay` makes it accept an applied value only that long after
    `apply` returned (case C02); `fail_apply` fails that many applies first;
    `crash_in` names a method that kills the process once, before or after
    doing its work (`"create"`, `"apply:after"`, ...).
    """

    clock: FakeClock
    accept_delay: float = 0.0
    fail_apply: int = 0
    crash_in: str | None = None
    accepted: set[bytes] = field(default_factory=set)
    revoked: list[bytes] = field(default_factory=list)
    applied_at: dict[bytes, float] = field(default_factory=dict)
    minted: int = 0
    _numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(2))

    def create(self, context: RotationContext) -> Minted:
        self._maybe_crash("create")
        self.minted += 1
        value = f"<PW{next(self._numbers)}>"
        self._maybe_crash("create:after")
        return Minted(Sensitive.from_text(value), ref=f"ref-{context.rotation_id}")

    def apply(self, context: RotationContext, value: Sensitive) -> None:
        self._maybe_crash("apply")
        if self.fail_apply > 0:
            self.fail_apply -= 1
            raise BackendUnavailable("the fake target refused the change")
        self.applied_at.setdefault(value.reveal(), self.clock.now())
        self._maybe_crash("apply:after")

    def test(self, context: RotationContext, value: Sensitive) -> bool:
        self._maybe_crash("test")
        applied = self.applied_at.get(value.reveal())
        return applied is not None and self.clock.now() >= applied + self.accept_delay

    def revoke(
        self, context: RotationContext, value: Sensitive, ref: str | None
    ) -> None:
        self._maybe_crash("revoke")
        self.revoked.append(value.reveal())

    def _maybe_crash(self, where: str) -> None:
        if self.crash_in == where:
            self.crash_in = None
            raise Crash(where)


# How long a test waits on a held step before it calls the run stuck.
HOLD_SECONDS = 30.0


class HeldTarget(RandomGenerator):
    """Random values, but the first `create` waits until the test lets it go.

    So a test knows one rotation is inside its create step while it sends more
    requests; `created` counts the values made.
    """

    def __init__(self) -> None:
        super().__init__(24, ALPHABETS["alphanumeric"])
        self.created = 0
        self._entered = threading.Event()
        self._released = threading.Event()
        self._lock = threading.Lock()

    def create(self, context: RotationContext) -> Minted:
        with self._lock:
            self.created += 1
            first = self.created == 1
        if first:
            self._entered.set()
            assert self._released.wait(HOLD_SECONDS), "the test never released"
        return super().create(context)

    def wait_until_held(self) -> None:
        assert self._entered.wait(HOLD_SECONDS), "no create step started"

    def release(self) -> None:
        self._released.set()
