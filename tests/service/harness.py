"""An in-process broker for service tests: its own store, key file and clock.

Requests go through httpx's ASGI transport, so they run the whole application
(middlewares, dependencies, error handlers) without a server, and the clock is
the test's: rate limits and expiry move when the test moves it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from service.app import create_app
from service.bootstrap import ADMIN_SERVICE, bootstrap_admin
from service.broker import Broker
from service.clock import Clock
from service.config import load_settings
from service.crypto import KeyEncryptionKey
from service.sensitive import Sensitive

ADMIN_SECRET = "harness-admin-secret-0123456789"
PUBLIC_URL = "http://broker.test"
TWO_ENVIRONMENTS: dict[str, Any] = {
    "dev": {"default_backend": "local", "backends": {"local": {"type": "local"}}},
    "prod": {"default_backend": "local", "backends": {"local": {"type": "local"}}},
}
CLIENT = ("192.0.2.10", 40000)


def write_config(folder: Path, environments: dict[str, Any], **extra: Any) -> Path:
    """A configuration file with a fresh key and a SQLite store in `folder`."""
    key_file = folder / "kek.key"
    if not key_file.exists():
        KeyEncryptionKey.generate().write(key_file)
    path = folder / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "public_url": PUBLIC_URL,
                "store": extra.pop("store", f"sqlite:///{folder / 'state.db'}"),
                "encryption_key_file": str(key_file),
                "environments": environments,
                **extra,
            }
        )
    )
    return path


class LocalBroker:
    """A broker and its app in this process, with an admin in every environment."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.app = create_app(broker)
        for name, environment in broker.environments.items():
            bootstrap_admin(
                broker.engine,
                broker.kek,
                broker.clock,
                name,
                backends=environment.backends,
                record=broker.audit.record,
                fixed_secret=Sensitive.from_text(ADMIN_SECRET),
            )
            broker.reload_policy(environment)

    def call(
        self,
        method: str,
        path: str,
        *,
        client: tuple[str, int] = CLIENT,
        **options: Any,
    ) -> httpx.Response:
        """One request through the whole application."""

        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=client)
            async with httpx.AsyncClient(
                transport=transport, base_url=PUBLIC_URL
            ) as http:
                return await http.request(method, path, **options)

        return asyncio.run(send())

    def token_response(
        self, env: str, client_id: str, secret: str, **form: str
    ) -> httpx.Response:
        return self.call(
            "POST",
            f"/v1/{env}/token",
            auth=(client_id, secret),
            data={"grant_type": "client_credentials", **form},
        )

    def token(self, env: str, client_id: str, secret: str, **form: str) -> str:
        response = self.token_response(env, client_id, secret, **form)
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def admin_token(self, env: str) -> str:
        return self.token(env, ADMIN_SERVICE, ADMIN_SECRET)

    def bearer(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def put_policy(self, env: str, name: str, document: str) -> httpx.Response:
        return self.call(
            "PUT",
            f"/v1/{env}/policies/{name}",
            content=document,
            headers={**self.bearer(self.admin_token(env)),
                     "Content-Type": "application/yaml"},
        )  # fmt: skip

    def credential(self, env: str, service: str) -> str:
        response = self.call(
            "POST",
            f"/v1/{env}/services/{service}/credentials",
            headers=self.bearer(self.admin_token(env)),
        )
        assert response.status_code == 201, response.text
        return str(response.json()["client_secret"])

    def audit_records(self, env: str) -> list[dict[str, Any]]:
        """Every record of an environment's chain, as exported."""
        from service.audit_chain import records

        with self.broker.engine.connect() as connection:
            return [record.as_json() for record in records(connection, env)]


@contextmanager
def local_broker(
    folder: Path,
    clock: Clock,
    environments: dict[str, Any] | None = None,
    **settings: Any,
) -> Iterator[LocalBroker]:
    """A LocalBroker over a configuration file written in `folder`."""
    path = write_config(folder, environments or TWO_ENVIRONMENTS, **settings)
    broker = Broker(load_settings(path), public_url=PUBLIC_URL, clock=clock)
    try:
        yield LocalBroker(broker)
    finally:
        broker.close()
