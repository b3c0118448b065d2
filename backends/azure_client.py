"""The azure backend's configuration, and the SDK client and credential it builds.

There are no default credential values: `{kind: default}` uses the SDK's
DefaultAzureCredential (workload identity, managed identity, environment, CLI),
and `{kind: client_secret}` reads the secret from a file at start-up, dropping
the single trailing newline editors leave and refusing anything else odd with an
error that names the key, never the value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from azure.core.credentials import TokenCredential
from azure.core.pipeline.policies import RedirectPolicy, RetryPolicy
from azure.identity import ClientSecretCredential, DefaultAzureCredential
from azure.keyvault.secrets import SecretClient
from pydantic import BaseModel, ConfigDict, Field, field_validator

from backends.azure_errors import RetryAfterLimit, SameOrigin
from service.errors import ConfigurationError
from service.sensitive import Sensitive

AZURE_VALUE_LIMIT = 25 * 1024


class DefaultCredentialConfig(BaseModel):
    """`{kind: default}`: DefaultAzureCredential (workload or managed identity, …)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["default"] = "default"


class ClientSecretCredentialConfig(BaseModel):
    """`{kind: client_secret}`: an app registration's secret, read from a file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["client_secret"]
    tenant_id: str = Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z.-]{0,99}$")
    client_id: str = Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z.-]{0,99}$")
    client_secret_file: Path
    authority: str | None = None
    """The Entra host, for a sovereign cloud (`https://login.microsoftonline.us`)."""
    disable_instance_discovery: bool = False

    @field_validator("authority")
    @classmethod
    def _https_authority(cls, value: str | None) -> str | None:
        return None if value is None else _https_origin(value, "authority")


class AzureConfig(BaseModel):
    """`{type: azure, vault_url: https://NAME.vault.azure.net, …}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["azure"]
    vault_url: str
    credential: Annotated[
        DefaultCredentialConfig | ClientSecretCredentialConfig,
        Field(discriminator="kind"),
    ] = Field(default_factory=DefaultCredentialConfig)
    ca_bundle: Path | None = None
    """CA certificates for every connection (vault and token endpoint)."""
    verify_challenge_resource: bool = True
    name_prefix: str = ""
    on_conflict: Literal["fail", "recover", "purge"] = "fail"
    purge_wait_seconds: float = Field(default=30, gt=0, le=600)
    max_value_bytes: int = Field(default=AZURE_VALUE_LIMIT, ge=1, le=AZURE_VALUE_LIMIT)
    max_attempts: int = Field(default=5, ge=1, le=10)
    max_retry_after_seconds: float = Field(default=60, ge=0, le=600)
    timeout_seconds: float = Field(default=30, gt=0, le=300)

    @field_validator("vault_url")
    @classmethod
    def _https_vault(cls, value: str) -> str:
        return _https_origin(value, "vault_url", allow_path=True)

    @field_validator("name_prefix")
    @classmethod
    def _prefix_is_a_folder(cls, value: str) -> str:
        if value and not value.endswith("/"):
            raise ValueError("must be empty or end with '/'")
        return value


def _https_origin(value: str, key: str, *, allow_path: bool = False) -> str:
    parts = urlsplit(value)
    if (
        parts.scheme != "https"
        or not parts.hostname
        or parts.username is not None
        or parts.query
        or parts.fragment
        or (parts.path.strip("/") and not allow_path)
    ):
        raise ValueError(f"{key} must be an https:// URL with a host and no query")
    return value.rstrip("/")


def build_client(
    name: str, config: AzureConfig
) -> tuple[SecretClient, TokenCredential]:
    """The SDK client for `config`, and the credential it authenticates with.

    Retries: 429 and 5xx answers are retried at most `max_attempts` times in all,
    honouring `Retry-After` up to `max_retry_after_seconds`. Redirects are not
    followed. Raises ConfigurationError when the client secret file is unusable.
    """
    credential = _credential(name, config)
    retries = config.max_attempts - 1
    options: dict[str, Any] = {
        "verify_challenge_resource": config.verify_challenge_resource,
        "retry_policy": RetryPolicy(
            retry_total=retries,
            retry_connect=min(2, retries),
            retry_read=min(2, retries),
            retry_status=retries,
            retry_backoff_factor=0.5,
            retry_backoff_max=8,
            timeout=config.timeout_seconds * config.max_attempts
            + config.max_retry_after_seconds * retries,
        ),
        "redirect_policy": RedirectPolicy.no_redirects(),
        "per_retry_policies": [
            SameOrigin(config.vault_url),
            RetryAfterLimit(config.max_retry_after_seconds),
        ],
        "connection_timeout": config.timeout_seconds,
        "read_timeout": config.timeout_seconds,
    }
    if config.ca_bundle is not None:
        options["connection_verify"] = str(config.ca_bundle)
    return SecretClient(config.vault_url, credential, **options), credential


def _credential(name: str, config: AzureConfig) -> TokenCredential:
    transport: dict[str, Any] = {}
    if config.ca_bundle is not None:
        transport["connection_verify"] = str(config.ca_bundle)
    settings = config.credential
    if isinstance(settings, DefaultCredentialConfig):
        return DefaultAzureCredential(**transport)
    if settings.authority is not None:
        transport["authority"] = settings.authority
    secret = _read_client_secret(name, settings.client_secret_file)
    return ClientSecretCredential(
        settings.tenant_id,
        settings.client_id,
        secret.reveal_text(),
        disable_instance_discovery=settings.disable_instance_discovery,
        **transport,
    )


def _read_client_secret(name: str, file: Path) -> Sensitive:
    """The client secret, without the one trailing newline editors leave."""
    key = f"backends.{name}.credential.client_secret_file"
    try:
        raw = file.read_bytes()
    except OSError:
        raise ConfigurationError(f"{key}: the file cannot be read") from None
    if raw.endswith(b"\n"):
        raw = raw[:-1].removesuffix(b"\r")
    if not raw or b"\n" in raw or b"\r" in raw:
        raise ConfigurationError(f"{key}: the file must hold the secret on one line")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(f"{key}: the file is not UTF-8 text") from None
    return Sensitive(raw)
