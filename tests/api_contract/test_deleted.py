"""Secrets deleted in their store behind the broker's back (cases C05b, C21).

Only the remote stores can delete: the local backend has no delete. A deleted
secret reads as deleted (410), never as missing or as an older version, and a
create-if-absent over it is a conflict that says why (409).
"""

from __future__ import annotations

import pytest

from tests.api_contract.api import Api
from tests.api_contract.behind import Store, store
from tests.api_contract.deployment import REMOTE_KINDS
from tests.backends.providers import Providers


@pytest.fixture(params=REMOTE_KINDS)
def remote(request: pytest.FixtureRequest, apis: dict[str, Api]) -> Api:
    return apis[str(request.param)]


@pytest.fixture
def behind(remote: Api, providers: Providers, monkeypatch: pytest.MonkeyPatch) -> Store:
    if remote.env == "azure":
        monkeypatch.setattr(
            providers.get("azure").fake.vault.faults, "limbo_seconds", 0
        )
    options = remote.broker.broker.settings.environments[remote.env].backends
    return store(providers, remote.env, options[remote.env])


def test_deleted_secret_reads_as_deleted_not_missing(
    remote: Api, behind: Store, place: str
) -> None:
    """Case C21: 410 `version_deleted`, never 404 and never the value."""
    remote.version_of(remote.put(f"{place}db", "<A>"))
    behind.delete(f"{place}db")

    response = remote.get(f"{place}db")

    assert (response.status_code, response.json()["error"]) == (410, "version_deleted")
    assert "<A>" not in response.text


def test_deleted_secret_never_falls_back_to_an_older_version(
    remote: Api, behind: Store, place: str
) -> None:
    """Case C21: "latest" is deleted; reading it answers so, not the older value."""
    remote.version_of(remote.put(f"{place}db", "<A>"))
    remote.version_of(remote.put(f"{place}db", "<B>"))
    behind.delete(f"{place}db")

    response = remote.get(f"{place}db")

    assert response.status_code == 410
    assert "<A>" not in response.text


def test_restored_secret_reads_again(remote: Api, behind: Store, place: str) -> None:
    """Once restored in its store, the secret answers its value again."""
    remote.version_of(remote.put(f"{place}db", "<A>"))
    behind.delete(f"{place}db")
    assert remote.get(f"{place}db").status_code == 410

    behind.restore(f"{place}db")

    assert remote.get(f"{place}db").json()["value"] == "<A>"


def test_create_if_absent_over_a_deleted_secret_is_409_saying_why(
    remote: Api, behind: Store, place: str
) -> None:
    """Case C05b: the name is taken by a deleted secret; neither 412 nor success."""
    remote.version_of(remote.put(f"{place}db", "<A>"))
    behind.delete(f"{place}db")

    response = remote.put(f"{place}db", "<Z>", **{"If-None-Match": "*"})

    assert (response.status_code, response.json()["error"]) == (409, "conflict")
    assert "delet" in response.json()["error_description"]
