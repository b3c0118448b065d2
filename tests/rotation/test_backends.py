"""Rotation through the backend protocol alone, on every backend kind.

The backends are the contract suite's: real servers (OpenBao, moto, the Azure
fake) started once per session by `tests/backends/providers`, shared with
the contract suites.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from backends.base import SecretBackend, Stage
from policies.evaluate import Policy
from policies.model import parse_document
from service.audit import AuditLog
from service.environment import Environment
from service.errors import VersionGone
from service.rotation.records import State
from service.rotation.service import RotationService
from service.rotation.settings import RotationSettings
from service.secret_access import SecretAccess
from service.sensitive import Sensitive
from service.store.database import open_store
from tests.backends.conftest import backend, backend_kind  # noqa: F401
from tests.rotation.fakes import FakeTarget
from tests.service.conftest import FakeClock

POLICY = """\
secrets:
  app/db:
    rotation: {every: 30d, generator: {type: fake}, grace: 1h}
"""


@pytest.fixture
def service(
    backend: SecretBackend,  # noqa: F811
    tmp_path: Path,
) -> Iterator[tuple[RotationService, SecretBackend, FakeClock]]:
    clock = FakeClock()
    engine = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    audit = AuditLog(engine, clock)
    document = parse_document("rotation", POLICY, "application/yaml")
    environment = Environment(
        "dev",
        issuer="https://broker.test/v1/dev",
        tokens=None,  # type: ignore[arg-type]
        backends={backend.name: backend},
        default_backend=backend.name,
        policy=Policy.from_documents({"rotation": document}),
    )
    made = RotationService(
        engine=engine, environments={"dev": environment},
        settings=RotationSettings(), webhooks=(), clock=clock,
        registry=CollectorRegistry(),
        secrets=SecretAccess(clock, max_value_bytes=65536),
        source="https://broker.test", audit=audit,
    )  # fmt: skip
    target = FakeTarget(clock)
    made.generators.register("fake", lambda _params, _settings: target)
    yield made, backend, clock
    made.stop()
    audit.close()
    engine.dispose()


def current_and_previous(store: SecretBackend) -> tuple[str, str]:
    current = store.read("app/db").value.reveal_text()
    previous = store.read("app/db", stage=Stage.PREVIOUS).value.reveal_text()
    return current, previous


def test_rotation_promotes_a_new_value_on_every_store(
    service: tuple[RotationService, SecretBackend, FakeClock],
) -> None:
    rotation, store, _clock = service
    store.write("app/db", Sensitive.from_text("<PW1>"), binary=False)

    record = rotation.machine.rotate("dev", "app/db")

    assert record.state is State.GRACE
    assert current_and_previous(store) == ("<PW2>", "<PW1>")


def test_previous_is_disabled_after_grace_on_every_store(
    service: tuple[RotationService, SecretBackend, FakeClock],
) -> None:
    rotation, store, clock = service
    store.write("app/db", Sensitive.from_text("<PW1>"), binary=False)
    record = rotation.machine.rotate("dev", "app/db")

    clock.advance(3600)
    rotation.retirement.retire_due()

    with pytest.raises(VersionGone):
        store.read("app/db", version=record.old_version)
    assert store.read("app/db").value.reveal_text() == "<PW2>"


def test_resumed_rotation_reuses_its_pending_version_on_every_store(
    service: tuple[RotationService, SecretBackend, FakeClock],
) -> None:
    rotation, store, clock = service
    store.write("app/db", Sensitive.from_text("<PW1>"), binary=False)
    target: FakeTarget = rotation.generators.build("fake", {})  # type: ignore[assignment]
    target.fail_apply = 1
    first = rotation.machine.rotate("dev", "app/db")

    clock.advance(3600)
    again = rotation.machine.rotate("dev", "app/db")

    assert (again.id, again.new_version) == (first.id, first.new_version)
    assert again.state is State.GRACE
    assert len(store.versions("app/db")) == 2
