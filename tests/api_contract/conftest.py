"""Fixtures of the HTTP contract suite: one four-backend broker per test module,
and `api`, one of its environments, parametrized over every backend kind.

Tests of one module share the broker and its clock; each keeps to names under
its own `place`, so none sees another's secrets.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.api_contract.api import Api
from tests.api_contract.deployment import KINDS, four_backend_broker
from tests.backends.providers import Providers
from tests.service.conftest import FakeClock
from tests.service.harness import LocalBroker

_places = itertools.count()


@pytest.fixture(scope="module")
def broker_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory,
    broker_clock: FakeClock,
    providers: Providers,
) -> Iterator[LocalBroker]:
    folder = tmp_path_factory.mktemp("api-contract")
    with four_backend_broker(folder, broker_clock, providers) as broker:
        yield broker


@pytest.fixture(scope="module")
def apis(deployment: LocalBroker, broker_clock: FakeClock) -> dict[str, Api]:
    return {kind: Api(deployment, kind, broker_clock) for kind in KINDS}


@pytest.fixture(params=KINDS)
def api(request: pytest.FixtureRequest, apis: dict[str, Api]) -> Api:
    """The environment whose default backend is of this kind."""
    return apis[str(request.param)]


@pytest.fixture
def place() -> str:
    """A name prefix no other test uses: `p17/`."""
    return f"p{next(_places)}/"
