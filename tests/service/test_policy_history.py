"""Every revision of a policy document is kept, deletions included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.conftest import FakeClock
from tests.service.harness import LocalBroker, local_broker

FIRST = "services:\n  app:\n    secrets:\n      read: ['a/*']\n"
SECOND = "services:\n  app:\n    secrets:\n      read: ['b/*']\n"


@pytest.fixture
def local(tmp_path: Path, clock: FakeClock) -> Iterator[LocalBroker]:
    with local_broker(tmp_path, clock) as broker:
        yield broker


def _revisions(local: LocalBroker) -> list[dict[str, object]]:
    response = local.call(
        "GET", "/v1/dev/policies/app/revisions",
        headers=local.bearer(local.admin_token("dev")),
    )  # fmt: skip
    return list(response.json()["revisions"])


def test_each_applied_document_is_kept_as_a_revision(local: LocalBroker) -> None:
    local.put_policy("dev", "app", FIRST)
    local.put_policy("dev", "app", SECOND)

    found = _revisions(local)

    assert [(r["revision"], r["created_by"]) for r in found] == [
        (1, "admin"), (2, "admin"),
    ]  # fmt: skip


def test_an_old_revision_can_be_read_back(local: LocalBroker) -> None:
    local.put_policy("dev", "app", FIRST)
    local.put_policy("dev", "app", SECOND)

    response = local.call(
        "GET", "/v1/dev/policies/app/revisions/1",
        headers=local.bearer(local.admin_token("dev")),
    )  # fmt: skip

    assert response.text == FIRST


def test_a_deletion_is_kept_and_a_new_document_continues_the_numbers(
    local: LocalBroker,
) -> None:
    local.put_policy("dev", "app", FIRST)
    local.call("DELETE", "/v1/dev/policies/app",
               headers=local.bearer(local.admin_token("dev")))  # fmt: skip

    applied = local.put_policy("dev", "app", SECOND).json()

    assert applied["revision"] == 3
    assert [r["deleted"] for r in _revisions(local)] == [False, True, False]


def test_a_dry_run_keeps_no_revision(local: LocalBroker) -> None:
    local.put_policy("dev", "app", FIRST)
    local.call(
        "PUT", "/v1/dev/policies/app", params={"dry_run": "true"}, content=SECOND,
        headers={**local.bearer(local.admin_token("dev")),
                 "Content-Type": "application/yaml"},
    )  # fmt: skip

    assert len(_revisions(local)) == 1
