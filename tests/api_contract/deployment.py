"""A broker with one environment on each backend kind, over the session's servers.

Each environment is named after its backend's kind (`local`, `vault`, `aws`,
`azure`) and holds that one backend as its default, in a place of its own on the
shared server (a path or name prefix), so brokers of different test modules
never see each other's secrets.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.backends.providers import Providers
from tests.backends.providers.aws import CREDENTIALS
from tests.service.conftest import FakeClock
from tests.service.harness import LocalBroker, local_broker

KINDS = ("local", "vault", "aws", "azure")
REMOTE_KINDS = ("vault", "aws", "azure")

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
