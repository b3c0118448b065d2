"""The `backend` fixture: a fresh, empty backend of every kind, over real servers.

The servers are the session's (`providers` in `tests/conftest.py`, see
`tests/backends/providers`); each backend is isolated by its own environment,
prefix or mount.
"""

from __future__ import annotations

import pytest

from backends.base import SecretBackend
from tests.backends.providers import KINDS, Providers


@pytest.fixture(params=KINDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backend(backend_kind: str, providers: Providers) -> SecretBackend:
    new_backend: SecretBackend = providers.get(backend_kind).new_backend()
    return new_backend
