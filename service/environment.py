"""One environment at run time: its keys, tokens, policy and backends.

Nothing here is shared between environments: each has its own issuer, signing
keys, token cache, policy and backend instances, so a token or a secret of one
can never be reached through another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from backends.base import SecretBackend
from policies.evaluate import Policy
from service.tokens import TokenAuthority


@dataclass(frozen=True)
class Location:
    """Where a broker secret lives: a backend and the path inside it."""

    backend: SecretBackend
    path: str


class Environment:
    """The run-time state of one environment."""

    def __init__(
        self,
        name: str,
        *,
        issuer: str,
        tokens: TokenAuthority,
        backends: Mapping[str, SecretBackend],
        default_backend: str,
        policy: Policy,
        policy_revision: int = 0,
    ) -> None:
        self.name = name
        self.issuer = issuer
        self.tokens = tokens
        self.backends = dict(backends)
        self.default_backend = self.backends[default_backend]
        self.policy = policy
        self.policy_revision = policy_revision

    def __repr__(self) -> str:
        return f"Environment(name={self.name!r}, issuer={self.issuer!r})"

    def locate(self, secret_name: str) -> Location:
        """The backend and path of a secret, as the policy declares it.

        A secret that no document declares lives in the default backend under its
        own name.
        """
        declaration = self.policy.binding(secret_name)
        if declaration is None:
            return Location(self.default_backend, secret_name)
        backend = self.backends[declaration.backend or self.default_backend.name]
        return Location(backend, declaration.path or secret_name)

    def use_policy(self, policy: Policy, revision: int) -> None:
        """Swap in a newly applied policy; readers see the old or the new whole."""
        self.policy = policy
        self.policy_revision = revision
