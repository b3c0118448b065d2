"""Webhooks: rotation events as CloudEvents (structured JSON), HMAC-signed.

Deliveries wait in a bounded in-memory queue and are retried with exponential
backoff until they succeed or run out of attempts.

TODO: keep the queue in the store (an outbox) so deliveries survive a restart;
until then a crash loses undelivered events, while the rotation records and
the log still say what happened. `deliver_due` sends what is
due now by the clock; a background thread calls it, tests call it directly.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from service.clock import Clock
from service.rotation.settings import WebhookTarget
from service.rotation.signing import (
    SIGNATURE_HEADER,
    load_key,
    signature,
    tls_verify,
)
from service.sensitive import Sensitive

log = structlog.get_logger(__name__)

CONTENT_TYPE = "application/cloudevents+json"
MAX_ATTEMPTS = 8
BACKOFF_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 300.0
QUEUE_LIMIT = 10_000


@dataclass(slots=True)
class _Delivery:
    target: int
    body: bytes
    event_id: str
    event_type: str
    attempts: int = 0
    next_at: float = 0.0


class _Target:
    def __init__(
        self, config: WebhookTarget, index: int, transport: httpx.BaseTransport | None
    ) -> None:
        self.config = config
        self.key: Sensitive = load_key(
            config.hmac_key_file, f"webhooks[{index}].hmac_key_file"
        )
        self.client = httpx.Client(
            timeout=config.timeout_seconds,
            verify=tls_verify(config.ca_file),
            trust_env=False,
            transport=transport,
        )

    def wants(self, event_type: str, env: str) -> bool:
        short = event_type.removeprefix("tokenbroker.")
        return (not self.config.events or short in self.config.events) and (
            not self.config.environments or env in self.config.environments
        )


class WebhookDispatcher:
    """Queues events for every target that wants them and delivers them."""

    def __init__(
        self,
        targets: Sequence[WebhookTarget],
        clock: Clock,
        *,
        backoff_seconds: float = BACKOFF_SECONDS,
        max_attempts: int = MAX_ATTEMPTS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._targets = [
            _Target(config, index, transport) for index, config in enumerate(targets)
        ]
        self._clock = clock
        self._backoff = backoff_seconds
        self._max_attempts = max_attempts
        self._queue: deque[_Delivery] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def publish(self, event: dict[str, Any]) -> None:
        """Queue a CloudEvent for every target that wants its type and env."""
        if not self._targets:
            return
        body = json.dumps(event, separators=(",", ":")).encode()
        env = str(event.get("tokenbrokerenv", ""))
        with self._lock:
            for index, target in enumerate(self._targets):
                if not target.wants(str(event["type"]), env):
                    continue
                if len(self._queue) >= QUEUE_LIMIT:
                    log.error("webhook_dropped", reason="queue_full", id=event["id"])
                    continue
                self._queue.append(
                    _Delivery(index, body, str(event["id"]), str(event["type"]))
                )
        self._wake.set()

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def deliver_due(self) -> int:
        """Send every delivery that is due; answer how many succeeded."""
        now = self._clock.now()
        with self._lock:
            due = [d for d in self._queue if d.next_at <= now]
            for delivery in due:
                self._queue.remove(delivery)
        delivered = 0
        for delivery in due:
            if self._send(delivery):
                delivered += 1
            elif delivery.attempts < self._max_attempts:
                delay = min(
                    BACKOFF_MAX_SECONDS, self._backoff * 2 ** (delivery.attempts - 1)
                )
                delivery.next_at = self._clock.now() + delay
                with self._lock:
                    self._queue.append(delivery)
            else:
                log.error(
                    "webhook_given_up",
                    id=delivery.event_id,
                    type=delivery.event_type,
                    attempts=delivery.attempts,
                )
        return delivered

    def start(self, interval: float) -> None:
        """Deliver in a daemon thread until `stop`."""
        if not self._targets or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._loop, args=(interval,), name="webhooks", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        for target in self._targets:
            target.client.close()

    def _loop(self, interval: float) -> None:
        while not self._stop.is_set():
            self._wake.wait(interval)
            self._wake.clear()
            if not self._stop.is_set():
                self.deliver_due()

    def _send(self, delivery: _Delivery) -> bool:
        target = self._targets[delivery.target]
        delivery.attempts += 1
        headers = {
            "Content-Type": CONTENT_TYPE,
            SIGNATURE_HEADER: signature(target.key, int(time.time()), delivery.body),
        }
        try:
            response = target.client.post(
                target.config.url, content=delivery.body, headers=headers
            )
        except httpx.TransportError as error:
            log.warning(
                "webhook_failed",
                id=delivery.event_id,
                attempt=delivery.attempts,
                error_type=type(error).__name__,
            )
            return False
        if not response.is_success:
            log.warning(
                "webhook_failed",
                id=delivery.event_id,
                attempt=delivery.attempts,
                status=response.status_code,
            )
            return False
        return True


Publisher = Callable[[dict[str, Any]], None]
