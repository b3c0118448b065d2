"""Changing a store behind the broker's back, with each store's own tools.

What "delete" means differs: Vault soft-deletes the latest version of a secret
(its older versions stay), AWS schedules the whole secret for deletion, Azure
soft-deletes the whole secret. The local backend has no delete at all. Each
`Store` acts on the native name the broker's configuration maps a secret to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from backends.azure_names import secret_name
from tests.backends.providers import Providers


class Store(Protocol):
    def delete(self, name: str) -> None:
        """Soft-delete as the store's own console would: recoverable."""

    def restore(self, name: str) -> None:
        """Undo `delete`."""


class _Vault:
    def __init__(self, provider: Any, options: Mapping[str, Any]) -> None:
        self._provider = provider
        self._mount = options["mount"]
        self._prefix = options["path_prefix"]

    def delete(self, name: str) -> None:
        self._provider.api("DELETE", self._url("data", name))

    def restore(self, name: str) -> None:
        versions = self._provider.api("GET", self._url("metadata", name))["data"]
        latest = versions["current_version"]
        self._provider.api("POST", self._url("undelete", name), {"versions": [latest]})

    def _url(self, kind: str, name: str) -> str:
        return f"{self._mount}/{kind}/{self._prefix}{name}"


class _Aws:
    def __init__(self, provider: Any, options: Mapping[str, Any]) -> None:
        self._client = provider.client()
        self._prefix = options["name_prefix"]

    def delete(self, name: str) -> None:
        self._client.delete_secret(SecretId=self._prefix + name, RecoveryWindowInDays=7)

    def restore(self, name: str) -> None:
        self._client.restore_secret(SecretId=self._prefix + name)


class _Azure:
    def __init__(self, provider: Any, options: Mapping[str, Any]) -> None:
        self._vault = provider.fake.vault
        self._prefix = options["name_prefix"]

    def delete(self, name: str) -> None:
        self._vault.delete(secret_name(self._prefix + name))

    def restore(self, name: str) -> None:
        # Recovery leaves the name in limbo for `limbo_seconds`; the test asks
        # for none, so the secret is back at once.
        self._vault.recover(secret_name(self._prefix + name))


_STORES: dict[str, type[_Vault] | type[_Aws] | type[_Azure]] = {
    "vault": _Vault,
    "aws": _Aws,
    "azure": _Azure,
}


def store(providers: Providers, kind: str, options: Mapping[str, Any]) -> Store:
    """The store of `kind` where a backend configured with `options` lives."""
    return _STORES[kind](providers.get(kind), options)
