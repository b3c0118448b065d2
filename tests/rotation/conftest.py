"""A rotation rig: a local backend, a policy, secret access and rotation service.

`rig.another_process()` builds a second rotation service on the same store, as
a second broker process (or a restarted one) would have.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from backends.base import SecretVersion, Stage
from backends.local import LocalBackend
from policies.evaluate import Policy
from policies.model import parse_document
from service.audit import AuditLog
from service.crypto import Envelope, KeyEncryptionKey
from service.environment import Environment
from service.rotation.records import Rotation
from service.rotation.service import RotationService
from service.rotation.settings import RotationSettings
from service.secret_access import SecretAccess
from service.sensitive import Sensitive
from service.tokens import Principal
from tests.rotation.fakes import FakeTarget
from tests.service.conftest import FakeClock, clock, engine, kek  # noqa: F401

POLICY = """\
services:
  rotator: {secrets: {read: ["**"], write: ["**"], rotate: ["**"]}}
  svc-a: {secrets: {read: ["**"]}}
  svc-b: {secrets: {read: ["**"]}}
secrets:
  app/db:
    rotation: {every: 30d, generator: {type: fake}, grace: 1h}
  app/key:
    rotation: {cron: "0 3 * * 1", generator: {type: random, length: 24}, grace: 24h}
  app/lazy:
    rotation:
      every: 30d
      generator: {type: fake}
      grace: 1h
      retire: when-unused
      max_grace: 1d
"""

FAST = {
    "retry_backoff_seconds": 10.0,
    "retry_backoff_max_seconds": 60.0,
    "max_attempts": 3,
    "lease_seconds": 30.0,
    "consumer_flush_seconds": 5.0,
}


def principal(service: str) -> Principal:
    """A verified caller whose token allows everything its policy does."""
    scopes = ("secrets:read:**", "secrets:write:**", "secrets:rotate:**")
    return Principal.from_claims(
        {"env": "dev", "sub": service, "jti": service, "scope": " ".join(scopes),
         "exp": 4_000_000_000}
    )  # fmt: skip


class Rig:
    """One broker process's rotation over a shared store and backend."""

    def __init__(
        self,
        store: Engine,
        time: FakeClock,
        target: FakeTarget,
        environment: Environment,
        settings: RotationSettings,
    ) -> None:
        self.engine = store
        self.clock = time
        self.target = target
        self.environment = environment
        self.settings = settings
        self.backend: LocalBackend = environment.default_backend  # type: ignore[assignment]
        self.secrets = SecretAccess(time, max_value_bytes=65536)
        self.registry = CollectorRegistry()
        self.events: list[dict[str, Any]] = []
        self.audit = AuditLog(store, time)
        self.others: list[Rig] = []
        self.service = RotationService(
            engine=store,
            environments={"dev": environment},
            settings=settings,
            webhooks=(),
            clock=time,
            registry=self.registry,
            secrets=self.secrets,
            source="https://broker.test",
            audit=self.audit,
        )
        self.service.generators.register("fake", lambda params, _s: target)
        self.service.events._publish = self.events.append

    def another_process(self) -> Rig:
        other = Rig(self.engine, self.clock, self.target, self.environment,
                    self.settings)  # fmt: skip
        self.others.append(other)
        return other

    def close(self) -> None:
        for rig in (*self.others, self):
            rig.service.stop()
            rig.audit.close()

    def put(self, name: str, value: str) -> str:
        info = self.backend.write(name, Sensitive.from_text(value), binary=False)
        return info.version

    def rotate(self, name: str = "app/db", **options: Any) -> Rotation:
        return self.service.machine.rotate("dev", name, **options)

    def run(self, rotation_id: str) -> Rotation:
        return self.service.machine.run(rotation_id)

    def stages(self, name: str = "app/db") -> dict[Stage, str]:
        return {
            stage: info.version
            for info in self.backend.versions(name)
            for stage in info.stages
        }

    def value(self, name: str = "app/db", **options: Any) -> str:
        return self.backend.read(name, **options).value.reveal_text()

    def read(self, name: str, service: str, **options: Any) -> SecretVersion:
        """A read through the API's read path, cache and consumer tracking."""
        return asyncio.run(
            self.secrets.read(self.environment, principal(service), name, **options)
        )

    def event_types(self) -> list[str]:
        return [str(event["type"]).rsplit(".", 1)[-1] for event in self.events]


def build_environment(
    store: Engine, time: FakeClock, key: KeyEncryptionKey, policy: str = POLICY
) -> Environment:
    backend = LocalBackend(
        "local", env="dev", engine=store, envelope=Envelope(key), clock=time
    )
    document = parse_document("rotation", policy, "application/yaml")
    return Environment(
        "dev",
        issuer="https://broker.test/v1/dev",
        tokens=None,  # type: ignore[arg-type]
        backends={"local": backend},
        default_backend="local",
        policy=Policy.from_documents({"rotation": document}),
    )


@pytest.fixture
def target(clock: FakeClock) -> FakeTarget:  # noqa: F811
    return FakeTarget(clock)


@pytest.fixture
def rig(
    engine: Engine,  # noqa: F811
    clock: FakeClock,  # noqa: F811
    kek: KeyEncryptionKey,  # noqa: F811
    target: FakeTarget,
) -> Iterator[Rig]:
    environment = build_environment(engine, clock, kek)
    made = Rig(engine, clock, target, environment, RotationSettings(**FAST))
    yield made
    made.close()
