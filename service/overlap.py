"""Refusing a configuration whose environments' backends overlap (case C29).

Two environments must not reach the same secrets through their backends: that
is how dev ends up reading prod. At start-up every pair of backends of different
environments is compared on their parsed configurations:

- Vault: the same server, namespace and mount, with path prefixes of which one
  contains the other (prefixes end at a `/`, so `app/` and `app-prod/` are apart).
- AWS Secrets Manager: the same region and endpoint with nested name prefixes.
  The account is known only when credentials are resolved, at run time; unless
  both name a role in different accounts, the same account is assumed.
- Azure Key Vault: the same vault. Access is granted per vault, so name
  prefixes inside one vault do not keep environments apart.

Sharing on purpose is written down in the file, as groups of `ENV.BACKEND`
references that may overlap one another::

    allow_shared_backends:
      - [staging.vault, prod.vault]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from backends import registry
from service.config import Settings
from service.errors import ConfigurationError

_ACCOUNT = re.compile(r"arn:aws[a-z-]*:iam::([0-9]{12}):")
_DEFAULT_PORTS = {"https": 443, "http": 80}


@dataclass(frozen=True)
class Place:
    """One backend of one environment, as configured."""

    env: str
    backend: str
    config: BaseModel

    @property
    def key(self) -> str:
        return _key(self.env, self.backend)

    @property
    def ref(self) -> str:
        return f"{self.env}.{self.backend}"


def check_overlaps(settings: Settings) -> None:
    """Return when no two environments' backends overlap, unless allowed.

    Raises ConfigurationError naming both backends of every overlapping pair,
    and any `allow_shared_backends` entry that names no backend.
    """
    places = [
        Place(env, name, registry.parse_config(_key(env, name), dict(options)))
        for env, config in settings.environments.items()
        for name, options in config.backends.items()
    ]
    groups = _shared_groups(settings.allow_shared_backends, places)
    problems = [
        f"{first.key} and {second.key} {why}"
        for first, second in combinations(places, 2)
        if first.env != second.env
        and not any({first.ref, second.ref} <= group for group in groups)
        and (why := overlap(first.config, second.config)) is not None
    ]
    if problems:
        raise ConfigurationError(
            "configuration refused: backends of different environments overlap, "
            "so one environment could read the other's secrets:\n  "
            + "\n  ".join(problems)
            + "\nIf the sharing is intended, list both as ENV.BACKEND in one group "
            "of allow_shared_backends."
        )


def overlap(first: BaseModel, second: BaseModel) -> str | None:
    """How two backend configurations reach the same secrets, or None."""
    kind = getattr(first, "type", None)
    if kind != getattr(second, "type", None):
        return None
    check = _CHECKS.get(str(kind))
    return None if check is None else check(first, second)


def _vault(first: Any, second: Any) -> str | None:
    if (
        _origin(first.url) != _origin(second.url)
        or first.namespace != second.namespace
        or first.mount != second.mount
        or not _nested(first.path_prefix, second.path_prefix)
    ):
        return None
    return (
        f"both use the Vault mount '{first.mount}' at {_origin(first.url)} with "
        f"overlapping path prefixes {_show(first.path_prefix)} and "
        f"{_show(second.path_prefix)}"
    )


def _aws(first: Any, second: Any) -> str | None:
    accounts = (_account(first.role_arn), _account(second.role_arn))
    if (
        first.region != second.region
        or _origin(first.endpoint_url) != _origin(second.endpoint_url)
        or (None not in accounts and accounts[0] != accounts[1])
        or not _nested(first.name_prefix, second.name_prefix)
    ):
        return None
    where = f" at {_origin(first.endpoint_url)}" if first.endpoint_url else ""
    account = (
        f" in account {accounts[0]}"
        if accounts[0] is not None and accounts[0] == accounts[1]
        else " (the AWS account is known only at run time, from the credentials, "
        "so the same account is assumed)"
    )
    return (
        f"both use AWS Secrets Manager in {first.region}{where} with overlapping "
        f"name prefixes {_show(first.name_prefix)} and "
        f"{_show(second.name_prefix)}{account}"
    )


def _azure(first: Any, second: Any) -> str | None:
    if _origin(first.vault_url) != _origin(second.vault_url):
        return None
    return (
        f"both use the Azure Key Vault {_origin(first.vault_url)} (access is "
        "granted per vault, so name prefixes do not keep them apart)"
    )


_CHECKS: dict[str, Callable[[Any, Any], str | None]] = {
    "vault": _vault,
    "aws": _aws,
    "azure": _azure,
}


def _shared_groups(
    groups: Sequence[Sequence[str]], places: Sequence[Place]
) -> list[set[str]]:
    known = {place.ref for place in places}
    for index, group in enumerate(groups):
        unknown = [ref for ref in group if ref not in known]
        if unknown:
            raise ConfigurationError(
                f"allow_shared_backends[{index}]: {', '.join(map(repr, unknown))} "
                "names no configured backend (write ENV.BACKEND)"
            )
    return [set(group) for group in groups]


def _key(env: str, backend: str) -> str:
    return f"environments.{env}.backends.{backend}"


def _nested(first: str, second: str) -> bool:
    """Whether one delimiter-terminated prefix contains the other."""
    return first.startswith(second) or second.startswith(first)


def _origin(url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or _DEFAULT_PORTS.get(scheme)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}{parts.path.rstrip('/')}"


def _account(role_arn: str | None) -> str | None:
    found = _ACCOUNT.match(role_arn or "")
    return found.group(1) if found else None


def _show(prefix: str) -> str:
    return f"'{prefix}'" if prefix else "'' (the whole store)"
