"""The `backend` fixture: a fresh, empty backend of every kind, over real servers.

Each kind has a module in `providers/` with `start(folder) -> Provider`; a provider
starts its server once per test session and hands out isolated backends (their own
environment, prefix or mount) through `new_backend()`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest

from backends.base import SecretBackend

KINDS = ["local", "local_postgres", "vault", "aws", "azure"]


@pytest.fixture(scope="session")
def providers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    started: dict[str, Any] = {}
    yield started
    for provider in started.values():
        provider.stop()


@pytest.fixture(params=KINDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backend(
    backend_kind: str,
    providers: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> SecretBackend:
    if backend_kind not in providers:
        try:
            module = importlib.import_module(f"tests.backends.providers.{backend_kind}")
        except ModuleNotFoundError as error:
            if error.name != f"tests.backends.providers.{backend_kind}":
                raise
            # TODO: remove once every backend of the backends issue has landed.
            pytest.skip(f"the {backend_kind} backend is not built yet")
        providers[backend_kind] = module.start(tmp_path_factory.mktemp(backend_kind))
    new_backend: SecretBackend = providers[backend_kind].new_backend()
    return new_backend
