"""Provides `local` backends over the PostgreSQL store."""

from __future__ import annotations

import itertools
import secrets
from pathlib import Path

from sqlalchemy import create_engine, text

from backends.local import LocalBackend
from service.clock import SystemClock
from service.crypto import Envelope, KeyEncryptionKey
from service.store.database import open_store
from tests.conftest import POSTGRES_SERVER


class Provider:
    """A database of its own for the session; an environment per backend."""

    def __init__(self) -> None:
        self._database = f"tokenbroker_local_{secrets.token_hex(4)}"
        self._admin = create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
        with self._admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{self._database}"'))
        self._engine = open_store(
            POSTGRES_SERVER.rsplit("/", 1)[0] + f"/{self._database}"
        )
        self._envelope = Envelope(KeyEncryptionKey.generate())
        self._counter = itertools.count()

    def new_backend(self) -> LocalBackend:
        return LocalBackend(
            "local",
            env=f"t{next(self._counter)}",
            engine=self._engine,
            envelope=self._envelope,
            clock=SystemClock(),
        )

    def stop(self) -> None:
        self._engine.dispose()
        with self._admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{self._database}" WITH (FORCE)'))
        self._admin.dispose()


def start(folder: Path) -> Provider:
    return Provider()
