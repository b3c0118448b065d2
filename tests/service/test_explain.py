"""`GET policies/explain`: allowed or denied, and the document and rule."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.service.conftest import FakeClock
from tests.service.harness import LocalBroker, local_broker

POLICY = """\
services:
  billing:
    secrets:
      read: ["payments/*"]
      deny: ["payments/root-*"]
"""


@pytest.fixture
def local(tmp_path: Path, clock: FakeClock) -> Iterator[LocalBroker]:
    with local_broker(tmp_path, clock) as broker:
        broker.put_policy("dev", "billing", POLICY)
        broker.put_policy("dev", "billing", POLICY)
        yield broker


def _explain(local: LocalBroker, service: str, scope: str) -> dict[str, Any]:
    response = local.call(
        "GET",
        "/v1/dev/policies/explain",
        params={"service": service, "scope": scope},
        headers=local.bearer(local.admin_token("dev")),
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_granted_scope_names_its_document_revision_and_rule(
    local: LocalBroker,
) -> None:
    answer = _explain(local, "billing", "secrets:read:payments/stripe")

    assert (answer["allowed"], answer["effect"]) == (True, "granted")
    assert (answer["document"], answer["document_revision"]) == ("billing", 2)
    assert answer["rule"] == "services.billing.secrets.read[0] = payments/*"


def test_a_denied_scope_names_the_deny_rule(local: LocalBroker) -> None:
    answer = _explain(local, "billing", "secrets:read:payments/root-key")

    assert (answer["allowed"], answer["effect"]) == (False, "denied")
    assert answer["rule"] == "services.billing.secrets.deny[0] = payments/root-*"


def test_a_scope_nothing_grants_says_so(local: LocalBroker) -> None:
    answer = _explain(local, "billing", "secrets:write:payments/stripe")

    assert (answer["effect"], answer["document"], answer["rule"]) == (
        "not_granted", None, None,
    )  # fmt: skip
    assert answer["reason"] == "no rule grants it"


def test_an_unknown_service_is_explained_as_named_by_no_policy(
    local: LocalBroker,
) -> None:
    answer = _explain(local, "nobody", "admin")

    assert answer["reason"] == "no policy names this service"
