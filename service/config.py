"""The broker's settings: one typed object, loaded once at start-up.

A YAML file (`--config`) gives the settings; every key can be overridden by a
`TOKENBROKER_…` variable, nested keys joined by `__`
(`TOKENBROKER_ENVIRONMENTS__PROD__DEFAULT_BACKEND=vault`). A variable holds plain
text (`TOKENBROKER_RATE_LIMITS__FAILED_AUTH_PER_CLIENT=5/m`), or JSON for a whole
list or mapping. A problem stops start-up with a message naming where the value
came from (the file and the key, or the variable) and never the value itself:
configuration holds credentials.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
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
    # `/readyz` answers within this, whatever its checks do (service/readiness.py).
    readiness_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # Proxies whose X-Forwarded-For names the caller (audited, rate-limited);
    # with none, forwarding headers are ignored, from localhost as from anyone.
    trusted_proxies: tuple[IPvAnyNetwork, ...] = ()

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
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            PlainEnvSource(settings_cls),
        ]
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
        raise ConfigurationError(_describe(source, error, _variables())) from None
    except yaml.YAMLError as error:
        raise ConfigurationError(f"{source}: not valid YAML{_where(error)}") from None
    return Settings.model_construct(**dict(settings))


class PlainEnvSource(EnvSettingsSource):
    """`TOKENBROKER_*` variables, where a value that is not JSON is plain text.

    pydantic-settings reads a variable for a "complex" field (a model, a
    dataclass, a collection) as JSON only, so a rate (`5/m`) had to be written
    `'"5/m"'`. Here JSON is tried first and the text is kept when it is not
    JSON; the field's own validation then judges it, and a refusal names the
    variable.
    """

    def decode_complex_value(
        self, field_name: str, field: FieldInfo, value: Any
    ) -> Any:
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError:
            return value


def _variables() -> dict[tuple[str, ...], str]:
    """Each `TOKENBROKER_*` variable set, by the key path it sets (lower case,
    as pydantic-settings reads them)."""
    return {
        tuple(name[len(ENV_PREFIX) :].lower().split("__")): name
        for name in os.environ
        if name.upper().startswith(ENV_PREFIX)
    }


def _describe(
    source: str, error: ValidationError, variables: dict[tuple[str, ...], str]
) -> str:
    """One line per problem, `where: key.path: what is wrong`, without input.

    `where` is the variable that set the key (or a key above it), else the
    file; when variables set keys below a refused one, both are named.
    """
    lines = []
    for problem in error.errors(include_input=False, include_url=False):
        loc = tuple(str(part).lower() for part in problem["loc"])
        key = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown key"
        elif problem["type"] in _CONTAINERS and loc in variables:
            message += "; a variable gives a list or mapping as JSON"
        above = [path for path in variables if loc[: len(path)] == path]
        below = [variables[path] for path in variables if path[: len(loc)] == loc]
        if above:
            where = variables[max(above, key=len)]
        else:
            where = " or ".join([source, *sorted(below)])
        lines.append(f"{where}: {key}: {message}")
    return "configuration refused:\n  " + "\n  ".join(lines)


_CONTAINERS = frozenset(
    {"dict_type", "list_type", "tuple_type", "model_type", "dataclass_type"}
)


def _where(error: yaml.YAMLError) -> str:
    """` at line N: problem`, from the parser's marks; never the text itself."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None)
    at = f" at line {mark.line + 1}" if mark is not None else ""
    return f"{at}: {problem}" if problem else at


def _hide_password(url: object) -> object:
    return (
        re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url) if isinstance(url, str) else url
    )
