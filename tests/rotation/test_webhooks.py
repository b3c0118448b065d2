"""Webhooks: signed CloudEvents, filtered per target, retried with backoff."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from service.rotation.settings import WebhookTarget
from service.rotation.signing import SIGNATURE_HEADER, verify
from service.rotation.webhooks import WebhookDispatcher
from service.sensitive import Sensitive
from tests.service.conftest import FakeClock

KEY = "webhook-key-0123456789abcdef"


class Receiver:
    """Answers each request with the next status of a script (then 200)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.statuses.pop(0) if self.statuses else 200)


def event(kind: str = "succeeded", env: str = "prod") -> dict[str, object]:
    return {"specversion": "1.0", "id": f"id-{kind}", "source": "https://b/v1/prod",
            "type": f"tokenbroker.rotation.{kind}", "tokenbrokerenv": env,
            "subject": "app/db", "data": {"secret": "app/db"}}  # fmt: skip


def dispatcher(
    tmp_path: Path, clock: FakeClock, receiver: Receiver, **target: object
) -> WebhookDispatcher:
    key_file = tmp_path / "webhook.key"
    key_file.write_text(KEY + "\n")
    config = WebhookTarget(url="https://hooks.test/in", hmac_key_file=key_file,
                           **target)  # type: ignore[arg-type]  # fmt: skip
    return WebhookDispatcher([config], clock, backoff_seconds=2.0, max_attempts=3,
                             transport=httpx.MockTransport(receiver))  # fmt: skip


def test_events_arrive_as_signed_cloud_events(tmp_path: Path, clock: FakeClock) -> None:
    receiver = Receiver()
    hooks = dispatcher(tmp_path, clock, receiver)

    hooks.publish(event())
    hooks.deliver_due()

    [request] = receiver.requests
    assert request.headers["content-type"] == "application/cloudevents+json"
    assert json.loads(request.content)["specversion"] == "1.0"
    assert verify(Sensitive.from_text(KEY), request.headers[SIGNATURE_HEADER],
                  request.content)  # fmt: skip


def test_a_failed_delivery_waits_for_its_backoff(
    tmp_path: Path, clock: FakeClock
) -> None:
    receiver = Receiver([500])
    hooks = dispatcher(tmp_path, clock, receiver)
    hooks.publish(event())
    hooks.deliver_due()

    clock.advance(1.0)
    hooks.deliver_due()

    assert len(receiver.requests) == 1
    assert hooks.pending() == 1


def test_a_failed_delivery_is_retried_until_it_succeeds(
    tmp_path: Path, clock: FakeClock
) -> None:
    receiver = Receiver([500, 503])
    hooks = dispatcher(tmp_path, clock, receiver)
    hooks.publish(event())

    for _ in range(3):
        hooks.deliver_due()
        clock.advance(10.0)

    assert len(receiver.requests) == 3
    assert hooks.pending() == 0


def test_delivery_gives_up_after_its_attempts(tmp_path: Path, clock: FakeClock) -> None:
    receiver = Receiver([500] * 10)
    hooks = dispatcher(tmp_path, clock, receiver)
    hooks.publish(event())

    for _ in range(6):
        hooks.deliver_due()
        clock.advance(60.0)

    assert len(receiver.requests) == 3
    assert hooks.pending() == 0


@pytest.mark.parametrize(
    ("target", "published", "delivered"),
    [
        ({"events": ("rotation.failed",)}, event("succeeded"), 0),
        ({"events": ("rotation.failed",)}, event("failed"), 1),
        ({"environments": ("dev",)}, event("failed", env="prod"), 0),
    ],
    ids=["other-type", "wanted-type", "other-environment"],
)
def test_a_target_gets_only_the_events_it_asked_for(
    tmp_path: Path,
    clock: FakeClock,
    target: dict[str, object],
    published: dict[str, object],
    delivered: int,
) -> None:
    receiver = Receiver()
    hooks = dispatcher(tmp_path, clock, receiver, **target)

    hooks.publish(published)
    hooks.deliver_due()

    assert len(receiver.requests) == delivered
