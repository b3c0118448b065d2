"""The services routes over the whole application: credentials of an admin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.conftest import FakeClock
from tests.service.harness import ADMIN_SECRET, LocalBroker, local_broker


@pytest.fixture
def local(tmp_path: Path, clock: FakeClock) -> Iterator[LocalBroker]:
    with local_broker(tmp_path, clock) as broker:
        yield broker


def credential_ids(local: LocalBroker, service: str) -> list[str]:
    listed = local.call(
        "GET", f"/v1/dev/services/{service}/credentials",
        headers=local.bearer(local.admin_token("dev")),
    )  # fmt: skip
    return [entry["credential_id"] for entry in listed.json()["credentials"]]


def revoke(local: LocalBroker, service: str, credential_id: str) -> int:
    return local.call(
        "DELETE", f"/v1/dev/services/{service}/credentials/{credential_id}",
        headers=local.bearer(local.admin_token("dev")),
    ).status_code  # fmt: skip


def test_revoking_the_last_credential_of_the_only_admin_is_refused(
    local: LocalBroker,
) -> None:
    [only] = credential_ids(local, "admin")

    assert revoke(local, "admin", only) == 409
    assert local.token_response("dev", "admin", ADMIN_SECRET).is_success


def test_an_admin_with_a_second_credential_may_revoke_the_first(
    local: LocalBroker,
) -> None:
    [first] = credential_ids(local, "admin")
    second = local.credential("dev", "admin")

    assert revoke(local, "admin", first) == 204
    assert local.token_response("dev", "admin", second).is_success
