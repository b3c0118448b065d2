"""Provides `azure` backends over the fake Key Vault, each under its own prefix."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from backends.azure import AzureBackend, connect
from backends.azure_client import AzureConfig
from tests.backends.azure_fake import FakeKeyVault


def backend_config(fake: FakeKeyVault, **options: Any) -> AzureConfig:
    """The configuration a broker would use for the fake vault."""
    settings: dict[str, Any] = {
        "type": "azure",
        "vault_url": fake.url,
        "credential": {
            "kind": "client_secret",
            "tenant_id": fake.identity.tenant_id,
            "client_id": fake.identity.client_id,
            "client_secret_file": str(fake.client_secret_file),
            "authority": fake.url,
            "disable_instance_discovery": True,
        },
        "ca_bundle": str(fake.files.ca_bundle),
        "verify_challenge_resource": False,
    }
    settings.update(options)
    return AzureConfig.model_validate(settings)


class Provider:
    """One fake vault for the session; each backend gets a name prefix of its own."""

    def __init__(self, folder: Path) -> None:
        self.fake = FakeKeyVault(folder).start()
        self._counter = itertools.count()
        self._backends: list[AzureBackend] = []

    def new_backend(self, **options: Any) -> AzureBackend:
        options.setdefault("name_prefix", self.fresh_prefix())
        backend = connect("azure", backend_config(self.fake, **options))
        self._backends.append(backend)
        return backend

    def broker_options(self, **options: Any) -> dict[str, Any]:
        """A backend's configuration, as a broker's file names it: a fresh name
        prefix in the fake vault, unless `options` say otherwise."""
        options.setdefault("name_prefix", self.fresh_prefix())
        config = backend_config(self.fake, **options)
        return config.model_dump(mode="json", exclude_none=True)

    def fresh_prefix(self) -> str:
        return f"t{next(self._counter)}/"

    def stop(self) -> None:
        for backend in self._backends:
            backend.close()
        self.fake.stop()


def start(folder: Path) -> Provider:
    return Provider(folder)
