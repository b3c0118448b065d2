"""Fixtures every test shares: a clean environment, a PostgreSQL database and the
session's backend servers."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from tests.backends.providers import Providers

POSTGRES_SERVER = os.environ.get(
    "TOKENBROKER_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(autouse=True)
def _clean_tokenbroker_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No TOKENBROKER_* variable of the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("TOKENBROKER_") and name != "TOKENBROKER_TEST_POSTGRES":
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test session, dropped after."""
    name = f"tokenbroker_test_{secrets.token_hex(4)}"
    admin = create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_SERVER.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def providers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Providers]:
    """The real backend servers (OpenBao, moto, the Azure fake), one of each kind
    for the whole session, each started when a test first asks for it."""
    started = Providers(tmp_path_factory)
    yield started
    started.stop()
