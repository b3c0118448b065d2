"""Every broker process serves the policy applied through any of them.

A change to an environment's policy documents (service/policy_store.py)
announces itself on the revocation feed's channel in the transaction that
makes it: each process reloads that environment's policy on the message,
within milliseconds on PostgreSQL. A message that is lost, and SQLite, which
sends none, are made up for by a chore on the feed's thread that reads every
environment's `marker` (a count of its policy revisions, which only grows)
each `revocation.poll_seconds` and reloads when it moved. Bound: as for a
revocation, one poll interval plus a query and the reload.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from service.environment import Environment
from service.policy_store import PolicyStore
from service.revocation_feed import Chore, RevocationFeed

log = structlog.get_logger(__name__)

MESSAGE_TYPE = "policy"


class PolicySync:
    """Reloads an environment's policy when another process changed it."""

    def __init__(
        self,
        policies: PolicyStore,
        environments: Mapping[str, Environment],
        reload: Callable[[Environment], None],
    ) -> None:
        self._policies = policies
        self._environments = environments
        self._reload = reload
        # Reloads from the listener and from the poll must not interleave: an
        # older load finishing last would stand until the next poll.
        self._lock = threading.Lock()
        self._seen = {env: policies.marker(env) for env in environments}

    def attach(self, feed: RevocationFeed, every: float) -> None:
        """Act on the feed's announcements and poll on its thread."""
        feed.handlers[MESSAGE_TYPE] = self.handle
        feed.chores.append(Chore("policy", every, self.poll))

    def handle(self, message: dict[str, Any]) -> None:
        """An announcement that an environment's policy changed."""
        env = str(message["env"])
        if env in self._environments:
            self.refresh(env)

    def poll(self) -> int:
        """Reload every environment whose policy moved; answer how many."""
        return sum(self.refresh(env) for env in self._environments)

    def refresh(self, env: str) -> bool:
        """Reload the policy of `env` if it changed since it was last loaded."""
        with self._lock:
            # Read before the load: a change landing in between moves the
            # marker again, and the next look reloads once more.
            marker = self._policies.marker(env)
            if marker == self._seen.get(env):
                return False
            environment = self._environments[env]
            self._reload(environment)
            self._seen[env] = marker
        log.info("policy_reloaded", env=env, revision=environment.policy_revision)
        return True
