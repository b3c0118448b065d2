"""Choosing a backend: one whose SDK is not installed says which extra brings it."""

from __future__ import annotations

import sys

import pytest

from backends import registry
from service.errors import ConfigurationError

# The packages each backend's extra installs, as the backend imports them.
SDKS = {
    "vault": ("requests", "hvac"),
    "aws": ("boto3", "botocore"),
    "azure": ("azure",),
}
OPTIONS = {
    "vault": {"type": "vault", "url": "https://vault.internal:8200", "mount": "kv",
              "auth": {"method": "token", "token_file": "/run/token"}},
    "aws": {"type": "aws", "region": "eu-west-1"},
    "azure": {"type": "azure", "vault_url": "https://prod-kv.vault.azure.net"},
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(SDKS))
def test_a_backend_whose_sdk_is_missing_names_the_extra_to_install(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on a machine that installed `.` alone: the SDK cannot be imported."""
    # The backend's modules are imported afresh, as in a new process.
    for module in [name for name in sys.modules
                   if name.startswith(registry.MODULES[kind])]:  # fmt: skip
        monkeypatch.delitem(sys.modules, module)
    # An import of the package, or of any module in it, fails as when absent.
    for package in SDKS[kind]:
        inside = [name for name in sys.modules if name.startswith(f"{package}.")]
        for module in (package, *inside):
            monkeypatch.setitem(sys.modules, module, None)

    with pytest.raises(ConfigurationError) as refused:
        registry.parse_config(f"environments.prod.backends.{kind}", OPTIONS[kind])

    message = refused.value.message
    assert message.startswith(
        f"environments.prod.backends.{kind}: the {kind} backend cannot be loaded "
        f"({SDKS[kind][0]}"
    )
    assert message.endswith(
        f" missing); install the '{kind}' extra: pip install '.[{kind}]' in the "
        "repository, or '.[all]' for every backend"
    )
