"""A broker with one environment on each backend kind, over the session's servers.

Each environment is named after its backend's kind (`local`, `vault`, `aws`,
`azure`) and holds that one backend as its default, in a place of its own on the
shared server (a path or name prefix), so brokers of different test modules
never see each other's secrets. `Api` speaks the HTTP API of one environment
as its admin and its services do.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.backends.providers import Providers
from tests.backends.providers.aws import CREDENTIALS
from tests.service.conftest import FakeClock
from tests.service.harness import LocalBroker, local_broker

KINDS = ("local", "vault", "aws", "azure")
REMOTE_KINDS = ("vault", "aws", "azure")
TOKEN_REUSE_SECONDS = 120.0

# Who may do what in every environment; `admin` comes from the harness.
POLICY = """\
services:
  reader:
    secrets: {read: ["open/**"]}
  svc-a:
    secrets: {read: ["**"]}
  svc-b:
    secrets: {read: ["**"]}
secrets:
  scheduled/db:
    rotation: {every: 30d, generator: {type: random, length: 32}, grace: 1h}
"""
SERVICES = ("reader", "svc-a", "svc-b")


def environments(
    providers: Providers, options: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """The `environments:` settings: one per kind; `options[kind]` are merged into
    that backend's configuration, and `options[kind]["provider"]` replaces the
    session's provider of that kind."""
    found: dict[str, Any] = {}
    for kind in KINDS:
        extra = dict((options or {}).get(kind, {}))
        provider = extra.pop("provider", None)
        if kind == "local":
            backend = {"type": "local", **extra}
        else:
            backend = (provider or providers.get(kind)).broker_options(**extra)
        found[kind] = {"default_backend": kind, "backends": {kind: backend}}
    return found


def four_backend_broker(
    folder: Path,
    clock: FakeClock,
    providers: Providers,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    **settings: Any,
) -> AbstractContextManager[LocalBroker]:
    """An in-process broker over `environments(providers, options)`."""
    return serving(folder, clock, environments(providers, options), **settings)


@contextmanager
def serving(
    folder: Path, clock: FakeClock, envs: Mapping[str, Any], **settings: Any
) -> Iterator[LocalBroker]:
    """An in-process broker over `envs`, each environment with the contract's
    policy and the harness's admin."""
    # The aws backend takes moto's keys from the default chain, as it would take
    # real ones; they are in the environment only while the clients are built.
    with pytest.MonkeyPatch.context() as patch:
        for name, value in CREDENTIALS.items():
            patch.setenv(name, value)
        made = local_broker(folder, clock, dict(envs), **settings)
        broker = made.__enter__()
    try:
        for env in envs:
            response = broker.put_policy(env, "contract", POLICY)
            assert response.status_code == 200, response.text
        yield broker
    finally:
        made.__exit__(None, None, None)


class Api:
    """One environment's HTTP API, called as its admin or as one of its services."""

    def __init__(self, broker: LocalBroker, env: str, clock: FakeClock) -> None:
        self.broker = broker
        self.env = env
        self.clock = clock
        self._secrets: dict[str, str] = {}
        self._tokens: dict[str, tuple[str, float]] = {}

    def token(self, who: str = "admin") -> str:
        """A valid token of `who`, minted again once it has aged."""
        held = self._tokens.get(who)
        if held is not None and self.clock.now() - held[1] < TOKEN_REUSE_SECONDS:
            return held[0]
        if who == "admin":
            token = self.broker.admin_token(self.env)
        else:
            if who not in self._secrets:
                self._secrets[who] = self.broker.credential(self.env, who)
            token = self.broker.token(self.env, who, self._secrets[who])
        self._tokens[who] = (token, self.clock.now())
        return token

    def call(
        self, method: str, path: str, *, who: str = "admin", **options: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token(who)}"}
        headers.update(options.pop("headers", {}))
        return self.broker.call(
            method, f"/v1/{self.env}/{path}", headers=headers, **options
        )

    def put(
        self, name: str, value: str, *, encoding: str = "text", **headers: str
    ) -> httpx.Response:
        body = {"value": value, "encoding": encoding}
        return self.call("PUT", f"secrets/{name}", json=body, headers=headers)

    def get(self, name: str, *, who: str = "admin", **params: str) -> httpx.Response:
        return self.call("GET", f"secrets/{name}", who=who, params=params)

    def version_of(self, response: httpx.Response) -> str:
        """The version a successful write answered."""
        assert response.status_code == 200, response.text
        return str(response.json()["version"])

    def list_all(self, prefix: str, page_size: int) -> list[str]:
        """Every name a listing gives, page by page, in the order given."""
        names: list[str] = []
        token: str | None = None
        for _page in range(1000):
            params: dict[str, Any] = {"prefix": prefix, "page_size": page_size}
            if token is not None:
                params["page_token"] = token
            response = self.call("GET", "secrets", params=params)
            assert response.status_code == 200, response.text
            body = response.json()
            names.extend(entry["name"] for entry in body["secrets"])
            token = body["next_page_token"]
            if token is None:
                return names
        raise AssertionError("the listing did not end after 1000 pages")
