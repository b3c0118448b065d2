"""Backends of different environments may not overlap unless the file says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from service.broker import Broker
from service.config import Settings, load_settings
from service.errors import ConfigurationError
from service.overlap import check_overlaps
from tests.service.harness import PUBLIC_URL, write_config

VAULT = {"type": "vault", "url": "https://vault.internal:8200", "mount": "kv",
         "auth": {"method": "token", "token_file": "/run/token"}}  # fmt: skip
AWS = {"type": "aws", "region": "eu-west-1"}
AZURE = {"type": "azure", "vault_url": "https://shared-kv.vault.azure.net"}


def _settings(dev: dict[str, Any], prod: dict[str, Any], **extra: Any) -> Settings:
    return Settings.model_validate(
        {
            "store": "sqlite:///unused.db",
            "encryption_key_file": Path("unused.key"),
            "environments": {
                "dev": {"default_backend": "main", "backends": {"main": dev}},
                "prod": {"default_backend": "main", "backends": {"main": prod}},
            },
            **extra,
        }
    )


def _refusal(dev: dict[str, Any], prod: dict[str, Any], **extra: Any) -> str:
    with pytest.raises(ConfigurationError) as refused:
        check_overlaps(_settings(dev, prod, **extra))
    return refused.value.message


OVERLAPPING = [
    pytest.param(VAULT, VAULT, id="vault-same-mount-no-prefix"),
    pytest.param(
        {**VAULT, "path_prefix": "app"},
        {**VAULT, "path_prefix": "app/prod"},
        id="vault-nested-prefixes",
    ),
    pytest.param(
        {**VAULT, "url": "https://VAULT.internal:8200/"}, VAULT, id="vault-same-server"
    ),
    pytest.param(AWS, {**AWS, "name_prefix": "prod/"}, id="aws-nested-prefixes"),
    pytest.param(
        {**AWS, "role_arn": "arn:aws:iam::111111111111:role/a"},
        {**AWS, "role_arn": "arn:aws:iam::111111111111:role/b"},
        id="aws-same-account",
    ),
    pytest.param(
        {**AZURE, "name_prefix": "dev/"},
        {**AZURE, "name_prefix": "prod/"},
        id="azure-same-vault-any-prefix",
    ),
]

SEPARATE = [
    pytest.param(
        {**VAULT, "path_prefix": "app"},
        {**VAULT, "path_prefix": "app-prod"},
        id="vault-sibling-prefixes-c29",
    ),
    pytest.param(VAULT, {**VAULT, "mount": "kv-prod"}, id="vault-other-mount"),
    pytest.param(VAULT, {**VAULT, "namespace": "prod"}, id="vault-other-namespace"),
    pytest.param(
        VAULT, {**VAULT, "url": "https://vault-prod.internal:8200"}, id="vault-other"
    ),
    pytest.param(
        {**AWS, "name_prefix": "dev/"},
        {**AWS, "name_prefix": "prod/"},
        id="aws-sibling-prefixes",
    ),
    pytest.param(AWS, {**AWS, "region": "us-east-1"}, id="aws-other-region"),
    pytest.param(
        {**AWS, "role_arn": "arn:aws:iam::111111111111:role/a"},
        {**AWS, "role_arn": "arn:aws:iam::222222222222:role/a"},
        id="aws-other-account",
    ),
    pytest.param(
        AZURE, {**AZURE, "vault_url": "https://prod-kv.vault.azure.net"}, id="azure"
    ),
    pytest.param({"type": "local"}, {"type": "local"}, id="local"),
    pytest.param(VAULT, AWS, id="different-kinds"),
]


@pytest.mark.parametrize(("dev", "prod"), OVERLAPPING)
def test_overlapping_backends_are_refused_naming_both(
    dev: dict[str, Any], prod: dict[str, Any]
) -> None:
    message = _refusal(dev, prod)

    assert "environments.dev.backends.main" in message
    assert "environments.prod.backends.main" in message


@pytest.mark.parametrize(("dev", "prod"), SEPARATE)
def test_separate_backends_are_accepted(
    dev: dict[str, Any], prod: dict[str, Any]
) -> None:
    check_overlaps(_settings(dev, prod))


def test_the_refusal_says_what_overlaps() -> None:
    message = _refusal({**VAULT, "path_prefix": "app"}, {**VAULT, "path_prefix": ""})

    assert "Vault mount 'kv'" in message and "'app/'" in message


def test_an_unknown_aws_account_is_said_to_be_assumed_the_same() -> None:
    message = _refusal(AWS, AWS)

    assert "account is known only at run time" in message


def test_sharing_listed_in_allow_shared_backends_is_accepted() -> None:
    check_overlaps(
        _settings(VAULT, VAULT, allow_shared_backends=[["dev.main", "prod.main"]])
    )


def test_an_allow_entry_naming_no_backend_is_refused() -> None:
    message = _refusal(
        {"type": "local"},
        {"type": "local"},
        allow_shared_backends=[["dev.main", "staging.main"]],
    )

    assert "allow_shared_backends[0]" in message and "'staging.main'" in message


def test_the_broker_refuses_to_start_on_overlapping_backends(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        {
            "dev": {"default_backend": "aws", "backends": {"aws": AWS}},
            "prod": {"default_backend": "aws", "backends": {"aws": AWS}},
        },
    )

    with pytest.raises(ConfigurationError, match=r"environments\.dev\.backends\.aws"):
        Broker(load_settings(path), public_url=PUBLIC_URL)
