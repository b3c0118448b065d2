"""Bulk rotation over the HTTP API (case C27): batches, throttled stores, and
one result for every secret, none dropped.

Faults are the stores' own: the Azure fake answers 429 with `Retry-After`, and
the aws backend's botocore client answers in moto's place through its event
hooks, as in the aws backend's tests.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse  # type: ignore[import-untyped]

from tests.api_contract.api import Api
from tests.api_contract.deployment import four_backend_broker
from tests.backends.azure_fake import Vault
from tests.backends.providers import Providers
from tests.backends.test_aws import aws_error
from tests.service.conftest import FakeClock
from tests.service.harness import LocalBroker

SECRETS = 12
# Batches of 5, at most 20 rotations a second per store: the third batch of a
# 12-secret pattern starts half a second after the first.
PACING = {"bulk_batch_size": 5, "bulk_per_second": 20.0}


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory,
    broker_clock: FakeClock,
    providers: Providers,
) -> Iterator[LocalBroker]:
    folder = tmp_path_factory.mktemp("api-bulk")
    with four_backend_broker(
        folder, broker_clock, providers, rotation=PACING
    ) as broker:
        yield broker


@pytest.fixture
def azure_vault(providers: Providers, monkeypatch: pytest.MonkeyPatch) -> Vault:
    """The session's fake vault; fault knobs set through it are undone after."""
    vault: Vault = providers.get("azure").fake.vault
    for knob in ("throttle_fraction", "throttle_in_a_row", "throttle_next",
                 "retry_after"):  # fmt: skip
        monkeypatch.setattr(vault.faults, knob, getattr(vault.faults, knob))
    return vault


def aws_hook(
    apis: dict[str, Api], operation: str, handler: Callable[..., Any]
) -> Callable[[], None]:
    """Answer `operation` of the broker's aws client with `handler` first;
    answers the call that removes the hook again."""
    backend: Any = apis["aws"].broker.broker.environments["aws"].backends["aws"]
    client = backend._client
    event = f"before-send.secrets-manager.{operation}"
    client.meta.events.register(event, handler)
    return lambda: client.meta.events.unregister(event, handler)


def seed(api: Api, place: str) -> list[str]:
    names = [f"{place}s{index:02d}" for index in range(SECRETS)]
    for name in names:
        api.version_of(api.put(name, f"<PW1-{name}>"))
    return names


def rotate_all(api: Api, place: str) -> list[dict[str, Any]]:
    response = api.call("POST", "rotations", json={"pattern": f"{place}*"})
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def test_bulk_rotation_answers_one_result_per_secret_in_order(
    api: Api, place: str
) -> None:
    """Every secret the pattern matches has its result, in name order."""
    names = seed(api, place)

    results = rotate_all(api, place)

    assert [(r["name"], r["status"]) for r in results] == [
        (name, "rotated") for name in names
    ]


def test_bulk_rotation_gives_every_secret_a_new_value(api: Api, place: str) -> None:
    """After the bulk rotation no secret still holds its old value."""
    names = seed(api, place)

    rotate_all(api, place)

    values = [api.get(name).json()["value"] for name in names]
    assert not [value for value in values if value.startswith("<PW1-")]


def test_bulk_rotation_comes_through_azure_throttling(
    apis: dict[str, Api], azure_vault: Vault, place: str
) -> None:
    """Case C27: a fifth of the calls answer 429; every secret still rotates."""
    api = apis["azure"]
    names = seed(api, place)
    azure_vault.faults.retry_after = 0
    azure_vault.faults.throttle_in_a_row = 1
    azure_vault.faults.throttle_fraction = 0.2
    seen_before = len(azure_vault.seen)

    results = rotate_all(api, place)

    assert [(r["name"], r["status"]) for r in results] == [
        (name, "rotated") for name in names
    ]
    assert [s.status for s in azure_vault.seen[seen_before:]].count(429) > 0


def test_bulk_rotation_comes_through_aws_throttling(
    apis: dict[str, Api], place: str
) -> None:
    """Case C27: each secret's first read answers ThrottlingException; every
    secret still rotates."""
    api = apis["aws"]
    names = seed(api, place)
    calls: Counter[str] = Counter()
    lock = threading.Lock()

    def throttle(request: Any, **_: Any) -> AWSResponse | None:
        with lock:
            calls[json.loads(request.body)["SecretId"]] += 1
            first = calls[json.loads(request.body)["SecretId"]] == 1
        return aws_error("ThrottlingException", "Rate exceeded") if first else None

    remove = aws_hook(apis, "GetSecretValue", throttle)
    try:
        results = rotate_all(api, place)
    finally:
        remove()

    assert [(r["name"], r["status"]) for r in results] == [
        (name, "rotated") for name in names
    ]
    assert len(calls) == SECRETS  # Each one was throttled once, then read.


def test_a_secret_whose_store_refuses_it_is_reported_not_dropped(
    apis: dict[str, Api], place: str
) -> None:
    """One secret fails at `create`; it is listed as failed, the others rotate."""
    api = apis["aws"]
    names = seed(api, place)
    refused = names[7]

    def deny(request: Any, **_: Any) -> AWSResponse | None:
        if json.loads(request.body)["SecretId"].endswith(refused):
            return aws_error("AccessDeniedException", "not for you")
        return None

    remove = aws_hook(apis, "PutSecretValue", deny)
    try:
        results = rotate_all(api, place)
    finally:
        remove()

    by_name = {r["name"]: r for r in results}
    assert list(by_name) == names
    assert (by_name[refused]["status"], by_name[refused]["failed_step"]) == (
        "retrying", "create",
    )  # fmt: skip
    assert "not for you" not in json.dumps(by_name[refused])
    assert {r["status"] for n, r in by_name.items() if n != refused} == {"rotated"}


def test_a_listing_the_store_throttles_is_429_never_an_empty_result(
    apis: dict[str, Api], azure_vault: Vault, place: str
) -> None:
    """Case C27: the matches cannot be listed, so nothing is claimed as done."""
    api = apis["azure"]
    seed(api, place)
    azure_vault.faults.retry_after = 600
    azure_vault.faults.throttle_next = 1000

    response = api.call("POST", "rotations", json={"pattern": f"{place}*"})

    assert (response.status_code, response.json()["error"]) == (429, "throttled")
    assert response.headers["retry-after"] == "600"


def test_a_read_the_store_throttles_is_429_with_retry_after(
    apis: dict[str, Api], azure_vault: Vault, place: str
) -> None:
    """Case C27: the broker's caller is told when to come back, not 500."""
    api = apis["azure"]
    api.version_of(api.put(f"{place}hot", "x"))
    azure_vault.faults.retry_after = 600
    azure_vault.faults.throttle_next = 1000

    response = api.get(f"{place}hot")

    assert (response.status_code, response.json()["error"]) == (429, "throttled")
    assert response.headers["retry-after"] == "600"
