"""Provides `local` backends over a SQLite store in a temporary folder."""

from __future__ import annotations

import itertools
from pathlib import Path

from backends.local import LocalBackend
from service.clock import SystemClock
from service.crypto import Envelope, KeyEncryptionKey
from service.store.database import open_store


class Provider:
    """One store for the session; each backend gets an environment of its own."""

    def __init__(self, folder: Path) -> None:
        self._engine = open_store(f"sqlite:///{folder / 'state.db'}")
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


def start(folder: Path) -> Provider:
    return Provider(folder)
