"""A listing names every secret a read by name reaches, wherever the policy
puts it: in another backend of the environment, or under another path of the
default one; and only those."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api_contract.api import Api
from tests.api_contract.deployment import serving
from tests.backends.providers import Providers
from tests.service.conftest import FakeClock

ENV = "mixed"
PLACES = """\
services:
  plain-reader:
    secrets: {read: ["plain/**"]}
secrets:
  ext/vault-db: {backend: vault}
  ext/never-written: {backend: vault}
  renamed/db: {path: legacy/db-key}
"""


@pytest.fixture(scope="module")
def broker_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory,
    broker_clock: FakeClock,
    providers: Providers,
) -> Iterator[Api]:
    """An environment on the local store, with a Vault beside it."""
    vault = providers.get("vault").broker_options()
    backends = {"local": {"type": "local"}, "vault": vault}
    envs = {ENV: {"default_backend": "local", "backends": backends}}
    folder = tmp_path_factory.mktemp("api-listing-places")
    with serving(folder, broker_clock, envs) as broker:
        placed = broker.put_policy(ENV, "places", PLACES)
        assert placed.status_code == 200, placed.text
        yield Api(broker, ENV, broker_clock)


@pytest.fixture(scope="module")
def written(api: Api) -> dict[str, str]:
    return {
        name: api.version_of(api.put(name, f"value of {name}"))
        for name in ("ext/vault-db", "renamed/db", "plain/one", "plain/two")
    }


@pytest.mark.parametrize("page_size", [1, 2, 100])
def test_every_secret_a_name_reaches_is_listed_once_under_that_name(
    api: Api, written: dict[str, str], page_size: int
) -> None:
    listed = api.list_all("", page_size=page_size)

    assert sorted(listed) == sorted(written)


def test_a_secret_in_another_backend_is_listed_with_its_current_version(
    api: Api, written: dict[str, str]
) -> None:
    response = api.call("GET", "secrets", params={"prefix": "ext/"})

    assert [(s["name"], s["version"]) for s in response.json()["secrets"]] == [
        ("ext/vault-db", written["ext/vault-db"])
    ]
    assert response.json()["next_page_token"] is None


def test_the_listing_leaves_out_what_the_caller_may_not_read(
    api: Api, written: dict[str, str]
) -> None:
    response = api.call("GET", "secrets", who="plain-reader", params={"prefix": ""})

    assert sorted(s["name"] for s in response.json()["secrets"]) == [
        "plain/one", "plain/two",
    ]  # fmt: skip


def test_a_page_token_no_listing_gave_is_400(api: Api, written: dict[str, str]) -> None:
    for token in ("made-up", "d.-1", "d.x"):
        response = api.call("GET", "secrets", params={"page_token": token})

        assert (response.status_code, response.json()["error"]) == (
            400, "invalid_request",
        ), token  # fmt: skip
