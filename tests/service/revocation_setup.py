"""A broker (or two replicas on one store) set up for the revocation tests.

`billing-api` reads `payments/*` and may get service-to-service tokens for
`ledger-api`; both services have a credential, and `payments/stripe` exists.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from service.app import create_app
from service.broker import Broker
from service.clock import Clock
from service.config import load_settings
from service.tokens import Principal
from tests.service.harness import PUBLIC_URL, LocalBroker, write_config

ENV = "dev"
SECRET = "payments/stripe"
VALUE = "sk_revocation_test_value"
POLICY = """\
services:
  billing-api:
    secrets:
      read: ["payments/*"]
    tokens:
      - audience: ledger-api
        scopes: ["ledger:write"]
  ledger-api:
    secrets:
      read: ["ledger/*"]
"""
LOCAL = {"default_backend": "local", "backends": {"local": {"type": "local"}}}


@dataclass
class Replica:
    """One broker of the set-up, with the services' client secrets."""

    local: LocalBroker
    secrets: dict[str, str]

    @property
    def broker(self) -> Broker:
        return self.local.broker

    def token(self, service: str = "billing-api", **form: str) -> str:
        return self.local.token(ENV, service, self.secrets[service], **form)

    def token_response(
        self, service: str = "billing-api", **form: str
    ) -> httpx.Response:
        return self.local.token_response(ENV, service, self.secrets[service], **form)

    def read(self, token: str) -> httpx.Response:
        return self.local.call(
            "GET", f"/v1/{ENV}/secrets/{SECRET}", headers=self.local.bearer(token)
        )

    def admin(self, method: str, path: str, **options: Any) -> httpx.Response:
        token = self.local.admin_token(ENV)
        return self.local.call(
            method, f"/v1/{ENV}/{path}", headers=self.local.bearer(token), **options
        )

    def form(self, path: str, service: str, **fields: str) -> httpx.Response:
        """A form POST authenticated as `service` (introspect, revoke)."""
        return self.local.call(
            "POST",
            f"/v1/{ENV}/{path}",
            auth=(service, self.secrets[service]),
            data=fields,
        )

    def principal(self, token: str) -> Principal:
        return self.broker.environments[ENV].tokens.verify(token)


class _Peer(LocalBroker):
    """A LocalBroker over a store whose admin another replica bootstrapped."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.app = create_app(broker)


@contextmanager
def replicas(
    folder: Path, clock: Clock, count: int = 1, **settings: object
) -> Iterator[list[Replica]]:
    """`count` brokers in this process over one configuration and store."""
    path = write_config(folder, {ENV: LOCAL}, **settings)
    brokers = [
        Broker(load_settings(path), public_url=PUBLIC_URL, clock=clock)
        for _ in range(count)
    ]
    try:
        locals_ = [LocalBroker(brokers[0]), *map(_Peer, brokers[1:])]
        first = locals_[0]
        assert first.put_policy(ENV, "services", POLICY).status_code == 200
        secrets = {
            service: first.credential(ENV, service)
            for service in ("billing-api", "ledger-api")
        }
        for local in locals_:
            local.broker.reload_policy(local.broker.environments[ENV])
        admin = first.admin_token(ENV)
        stored = first.call(
            "PUT", f"/v1/{ENV}/secrets/{SECRET}", json={"value": VALUE},
            headers=first.bearer(admin),
        )  # fmt: skip
        assert stored.status_code == 200, stored.text
        yield [Replica(local, secrets) for local in locals_]
    finally:
        for broker in brokers:
            broker.close()
