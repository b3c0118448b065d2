"""Choosing and building backends from configuration, in one place.

Each backend module exports `Config` (a pydantic model whose `type` field names
it) and `create(name, config, context)`. Modules are imported only when an
environment configures them, so an SDK that is not installed costs nothing until
it is asked for.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine

from backends.base import SecretBackend
from service.clock import Clock
from service.crypto import Envelope
from service.errors import ConfigurationError

MODULES = {
    "local": "backends.local",
    "vault": "backends.vault",
    "aws": "backends.aws",
    "azure": "backends.azure",
}
# The package extra that installs each backend's SDK (pyproject.toml).
EXTRAS = {"vault": "vault", "aws": "aws", "azure": "azure"}


@dataclass(frozen=True)
class BackendContext:
    """What the broker lends every backend it builds."""

    env: str
    engine: Engine
    envelope: Envelope
    clock: Clock


def parse_config(where: str, raw: dict[str, Any]) -> BaseModel:
    """Validate one backend's options; `where` is its key path for messages.

    Raises ConfigurationError naming the key, never a value.
    """
    kind = raw.get("type")
    if kind not in MODULES:
        raise ConfigurationError(
            f"{where}.type: expected one of {', '.join(sorted(MODULES))}"
        )
    module = _module(where, str(kind))
    try:
        config: BaseModel = module.Config.model_validate(raw)
    except ValidationError as error:
        problems = [
            f"{where}.{'.'.join(str(part) for part in problem['loc'])}: "
            + problem["msg"].removeprefix("Value error, ")
            for problem in error.errors(include_input=False, include_url=False)
        ]
        raise ConfigurationError("\n  ".join(problems)) from None
    return config


def build(name: str, config: BaseModel, context: BackendContext) -> SecretBackend:
    """A ready backend for `config`, as parsed by `parse_config`."""
    kind = getattr(config, "type", "")
    backend: SecretBackend = _module(name, kind).create(name, config, context)
    return backend


def _module(where: str, kind: str) -> ModuleType:
    try:
        return importlib.import_module(MODULES[kind])
    except ImportError as error:
        extra = EXTRAS.get(kind, "all")
        raise ConfigurationError(
            f"{where}: the {kind} backend cannot be loaded ({error.name} missing); "
            f"install the '{extra}' extra: pip install '.[{extra}]' in the "
            f"repository, or '.[all]' for every backend"
        ) from None
