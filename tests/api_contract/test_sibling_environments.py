"""Environments whose places in one store are siblings (case C29): `app` lives
under `app/`, `app-prod` under `app-prod/` of the same server, and neither ever
lists or reads the other's secrets. For the local backend the environments'
own names are the siblings. Azure grants access per vault, so the broker
refuses two environments in one vault unless the configuration says it is
meant (`allow_shared_backends`); this test says so, to show the prefixes hold.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.api_contract.api import Api
from tests.api_contract.deployment import KINDS, serving
from tests.backends.providers import Providers
from tests.service.conftest import FakeClock
from tests.service.harness import LocalBroker

PREFIX_KEY = {"vault": "path_prefix", "aws": "name_prefix", "azure": "name_prefix"}


def siblings(providers: Providers) -> dict[str, Any]:
    """`KIND-app` and `KIND-app-prod` for every kind, on sibling prefixes."""
    envs: dict[str, Any] = {}
    for kind in KINDS:
        if kind == "local":
            options = {"app": {"type": "local"}, "app-prod": {"type": "local"}}
        else:
            provider = providers.get(kind)
            place = provider.broker_options()[PREFIX_KEY[kind]].rstrip("/")
            options = {
                scope: provider.broker_options(
                    **{PREFIX_KEY[kind]: f"{place}/{scope}/"}
                )
                for scope in ("app", "app-prod")
            }
        for scope, backend in options.items():
            envs[f"{kind}-{scope}"] = {
                "default_backend": kind,
                "backends": {kind: backend},
            }
    return envs


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory,
    broker_clock: FakeClock,
    providers: Providers,
) -> Iterator[LocalBroker]:
    folder = tmp_path_factory.mktemp("api-siblings")
    shared = [["azure-app.azure", "azure-app-prod.azure"]]
    with serving(
        folder, broker_clock, siblings(providers), allow_shared_backends=shared
    ) as broker:
        yield broker


@pytest.fixture(params=KINDS)
def pair(
    request: pytest.FixtureRequest, deployment: LocalBroker, broker_clock: FakeClock
) -> tuple[Api, Api]:
    """The `app` and `app-prod` environments of one kind of store."""
    kind = str(request.param)
    return (
        Api(deployment, f"{kind}-app", broker_clock),
        Api(deployment, f"{kind}-app-prod", broker_clock),
    )


def test_an_environment_lists_only_its_own_secrets(pair: tuple[Api, Api]) -> None:
    """`app` lists its `db` and nothing of `app-prod`."""
    app, app_prod = pair
    app.version_of(app.put("listed/db", "<app>"))
    app_prod.version_of(app_prod.put("listed/db", "<app-prod>"))
    app_prod.version_of(app_prod.put("listed/only-prod", "<app-prod>"))

    assert app.list_all("listed/", page_size=10) == ["listed/db"]


def test_an_environment_reads_only_its_own_value(pair: tuple[Api, Api]) -> None:
    """The same name reads each environment's own value."""
    app, app_prod = pair
    app.version_of(app.put("read/db", "<app>"))
    app_prod.version_of(app_prod.put("read/db", "<app-prod>"))

    assert app.get("read/db").json()["value"] == "<app>"


def test_a_secret_of_the_sibling_is_missing_here(pair: tuple[Api, Api]) -> None:
    """A secret only the sibling holds is 404 here."""
    app, app_prod = pair
    app_prod.version_of(app_prod.put("theirs/db", "<app-prod>"))

    assert app.get("theirs/db").status_code == 404
