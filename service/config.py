"""The broker's settings: one typed object, loaded once at start-up.

A YAML file (`--config`) gives the settings; every key can be overridden by a
`TOKENBROKER_…` variable, nested keys joined by `__`
(`TOKENBROKER_ENVIRONMENTS__PROD__DEFAULT_BACKEND=vault`). A problem stops start-up
with a message naming the file and the key, never the value: configuration holds
credentials.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from service.errors import ConfigurationError
from service.key_schedule import SigningKeySettings
from service.limits import RateLimitSettings
from service.revocation_feed import RevocationSettings
from service.rotation.settings import RotationSettings, WebhookTarget

ENV_PREFIX = "TOKENBROKER_"
ENVIRONMENT_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")


class EnvironmentConfig(BaseModel):
    """One environment: its backends and the one that holds undeclared secrets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_backend: str
    # Each backend's options are validated by its own module (backends.registry),
    # so that a backend's settings live beside the code that reads them.
    backends: dict[str, dict[str, Any]]

    @model_validator(mode="after")
    def _default_backend_exists(self) -> EnvironmentConfig:
        if self.default_backend not in self.backends:
            raise ValueError(
                "default_backend must name one of this environment's backends"
            )
        return self


class Settings(BaseSettings):
    """Everything `tokenbroker serve` needs; see SPEC.md, "Configuration"."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    public_url: str | None = Field(
        default=None,
        description="Base of every issuer; derived from --host and --port if unset.",
    )
    store: str
    encryption_key_file: Path
    environments: dict[str, EnvironmentConfig]
    max_secret_bytes: int = Field(default=65536, ge=1, le=4 * 1024 * 1024)
    token_ttl_seconds: int = Field(default=300, ge=10, le=86400)
    policies_dir: Path | None = None
    dev_mode: bool = False
    rotation: RotationSettings = Field(default_factory=RotationSettings)
    # Rotation events as signed CloudEvents; see service/rotation/settings.py.
    webhooks: tuple[WebhookTarget, ...] = ()
    # Groups of ENV.BACKEND that may overlap on purpose; see service/overlap.py.
    allow_shared_backends: tuple[tuple[str, ...], ...] = ()
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    # Propagation of revocations between processes; see service/revocation_feed.py.
    revocation: RevocationSettings = Field(default_factory=RevocationSettings)
    # Signing-key rotation; see service/key_schedule.py.
    signing_keys: SigningKeySettings = Field(default_factory=SigningKeySettings)

    @field_validator("environments")
    @classmethod
    def _check_environments(
        cls, environments: dict[str, EnvironmentConfig]
    ) -> dict[str, EnvironmentConfig]:
        if not environments:
            raise ValueError("at least one environment is required")
        for name in environments:
            if not ENVIRONMENT_NAME.fullmatch(name):
                raise ValueError(
                    "environment names are lowercase letters, digits and '-'"
                )
        return environments

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", url):
            raise ValueError("expected an http(s) URL without query or fragment")
        return url.rstrip("/")

    @field_validator("store")
    @classmethod
    def _check_store(cls, url: str) -> str:
        if not url.startswith(("sqlite:", "postgresql")):
            raise ValueError("expected a sqlite:/// or postgresql+psycopg:// URL")
        return url

    def __repr_args__(self) -> Any:
        # The store URL may carry a database password.
        for key, value in super().__repr_args__():
            yield key, (_hide_password(value) if key == "store" else value)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Earlier sources win: explicit arguments, then the environment, then the
        # file. No .env file is read: settings come from one visible place.
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        yaml_file = settings_cls.model_config.get("yaml_file")
        if yaml_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file))
        return tuple(sources)


def load_settings(path: Path | None, **overrides: Any) -> Settings:
    """Settings from `path` (if any), `TOKENBROKER_*` variables and `overrides`.

    Raises ConfigurationError naming the file and each offending key.
    """
    source = str(path) if path else "environment"
    if path is not None and not path.is_file():
        raise ConfigurationError(f"{path}: no such configuration file")

    class FileSettings(Settings):
        model_config = SettingsConfigDict(yaml_file=path)

    try:
        settings = FileSettings(**overrides)
    except ValidationError as error:
        raise ConfigurationError(_describe(source, error)) from None
    except ValueError as error:  # YAML syntax: the parser's message names a line.
        raise ConfigurationError(f"{source}: not valid YAML ({error})") from None
    return Settings.model_construct(**dict(settings))


def _describe(source: str, error: ValidationError) -> str:
    """One line per problem, `file: key.path: what is wrong`, without input."""
    lines = []
    for problem in error.errors(include_input=False, include_url=False):
        key = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{source}: {key}: {message}")
    return "configuration refused:\n  " + "\n  ".join(lines)


def _hide_password(url: object) -> object:
    return (
        re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url) if isinstance(url, str) else url
    )
