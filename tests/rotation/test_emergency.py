"""Emergency rotation with the `http` generator against a real upstream: no
grace, and the previous credential revoked upstream at once (case C03)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from backends.base import Stage
from service.crypto import KeyEncryptionKey
from service.errors import VersionDisabled
from service.rotation.records import State
from service.rotation.settings import GeneratorEndpoint, RotationSettings
from tests.rotation.conftest import FAST, Rig, build_environment
from tests.rotation.fakes import FakeTarget
from tests.rotation.upstream import Upstream, fingerprint
from tests.service.conftest import FakeClock, clock, engine, kek  # noqa: F401

POLICY = """\
services:
  svc-a: {secrets: {read: ["**"]}}
secrets:
  app/api:
    rotation: {every: 30d, generator: {type: http, endpoint: minter}, grace: 1h}
"""


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    running = Upstream(tmp_path_factory.mktemp("upstream"))
    yield running
    running.stop()


@pytest.fixture
def rig(
    engine: Engine,  # noqa: F811
    clock: FakeClock,  # noqa: F811
    kek: KeyEncryptionKey,  # noqa: F811
    upstream: Upstream,
) -> Iterator[Rig]:
    upstream.state.failures.clear()
    upstream.state.revoked.clear()
    endpoint = GeneratorEndpoint(
        url=upstream.url, hmac_key_file=upstream.key_file, ca_file=upstream.ca_file,
        retries=0,
    )  # fmt: skip
    settings = RotationSettings.model_validate(
        {**FAST, "endpoints": {"minter": endpoint}}
    )
    environment = build_environment(engine, clock, kek, POLICY)
    made = Rig(engine, clock, FakeTarget(clock), environment, settings)
    made.rotate("app/api")  # the first upstream credential, v2
    yield made
    made.close()


def test_an_emergency_rotation_revokes_the_previous_credential_upstream_at_once(
    rig: Rig, upstream: Upstream
) -> None:
    previous = rig.value("app/api")

    rotation = rig.rotate("app/api", no_grace=True)

    assert rotation.state is State.COMPLETED
    assert [r["fingerprint"] for r in upstream.state.revoked] == [fingerprint(previous)]
    with pytest.raises(VersionDisabled):
        rig.read("app/api", "svc-a", stage=Stage.PREVIOUS)


def test_an_ordinary_rotation_leaves_the_previous_credential_alive_upstream(
    rig: Rig, upstream: Upstream
) -> None:
    previous = rig.value("app/api")

    rotation = rig.rotate("app/api")

    assert rotation.state is State.GRACE
    assert upstream.state.revoked == []
    assert rig.read("app/api", "svc-a", stage=Stage.PREVIOUS).value.reveal_text() == (
        previous
    )


def test_an_emergency_takes_over_a_rotation_waiting_on_its_test_without_grace(
    rig: Rig, upstream: Upstream
) -> None:
    """The rotation that holds the secret finishes now, and retires at once."""
    previous = rig.value("app/api")
    upstream.state.failures["verify"].append(503)
    waiting = rig.rotate("app/api")
    assert (waiting.state, waiting.step.value) == (State.RUNNING, "test")

    rotation = rig.rotate("app/api", no_grace=True)

    assert (rotation.id, rotation.state, rotation.no_grace) == (
        waiting.id, State.COMPLETED, True,
    )  # fmt: skip
    assert [r["fingerprint"] for r in upstream.state.revoked] == [fingerprint(previous)]
