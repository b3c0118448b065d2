"""The real backend servers of a test session, each started on first use.

Each module here has `start(folder) -> Provider`; a provider starts its server
once and hands out isolated backends (an environment, prefix or mount of their
own) through `new_backend()`, and broker configuration for the same through
`broker_options()`. Every suite that needs real servers (the protocol contract,
rotation, the HTTP contract) asks the one session-wide `Providers` for them, so
each server starts once per session.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest

KINDS = ("local", "local_postgres", "vault", "aws", "azure")


class Providers:
    """Started providers by kind; `stop()` ends every one of them."""

    def __init__(self, folders: pytest.TempPathFactory) -> None:
        self._folders = folders
        self._started: dict[str, Any] = {}

    def get(self, kind: str) -> Any:
        """The provider of `kind`, started now if it is not running yet."""
        if kind not in self._started:
            module = importlib.import_module(f"tests.backends.providers.{kind}")
            self._started[kind] = module.start(self._folders.mktemp(kind))
        return self._started[kind]

    def stop(self) -> None:
        for provider in self._started.values():
            provider.stop()
        self._started.clear()
