"""Policy documents kept in the store, through the whole application."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from policies.model import RESERVED_DOCUMENT_NAMES
from tests.service.conftest import FakeClock
from tests.service.harness import LocalBroker, local_broker

POLICIES = "/v1/{env}/policies/"


@pytest.fixture
def local(tmp_path: Path, clock: FakeClock) -> Iterator[LocalBroker]:
    with local_broker(tmp_path, clock) as broker:
        yield broker


def test_a_document_named_explain_is_refused_and_not_stored(
    local: LocalBroker,
) -> None:
    """GET policies/explain is the explain endpoint, so the name is taken."""
    response = local.put_policy("dev", "explain", "services: {}\n")

    listed = local.call(
        "GET", "/v1/dev/policies", headers=local.bearer(local.admin_token("dev"))
    )
    assert (response.status_code, response.json()["error"]) == (
        400, "invalid_request",
    )  # fmt: skip
    assert "explain" not in {entry["name"] for entry in listed.json()["policies"]}


def test_every_name_a_policies_route_takes_is_reserved(local: LocalBroker) -> None:
    """A new route `policies/WORD` must reserve WORD, or its document is lost."""
    taken = {
        path.removeprefix(POLICIES).split("/")[0]
        for path in local.app.openapi()["paths"]
        if path.startswith(POLICIES)
    }

    assert {name for name in taken if "{" not in name} == RESERVED_DOCUMENT_NAMES
