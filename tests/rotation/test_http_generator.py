"""The `http` generator against a signed HTTPS upstream on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.errors import BackendError, InvalidRequest
from service.rotation.generators import RotationContext
from service.rotation.http_generator import HttpGenerator
from service.rotation.settings import GeneratorEndpoint, RotationSettings
from service.sensitive import Sensitive
from tests.rotation.upstream import Upstream, fingerprint

CONTEXT = RotationContext("dev", "app/db", "rotation-0001")


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    running = Upstream(tmp_path_factory.mktemp("upstream"))
    yield running
    running.stop()


@pytest.fixture
def generator(upstream: Upstream) -> Iterator[HttpGenerator]:
    upstream.state.failures.clear()
    endpoint = GeneratorEndpoint(
        url=upstream.url, hmac_key_file=upstream.key_file, ca_file=upstream.ca_file,
        retries=2,
    )  # fmt: skip
    made = HttpGenerator("minter", endpoint, sleep=lambda _seconds: None)
    yield made
    made.close()


def test_mint_answers_the_upstreams_credential_and_its_ref(
    generator: HttpGenerator, upstream: Upstream
) -> None:
    minted = generator.create(CONTEXT)

    assert minted.value.reveal_text() == upstream.state.minted["rotation-0001"]
    assert minted.ref == "cred-rotation"


def test_mint_is_idempotent_under_the_rotation_id(generator: HttpGenerator) -> None:
    first = generator.create(CONTEXT)
    second = generator.create(CONTEXT)

    assert first.value == second.value


def test_every_request_carries_a_valid_signature(
    generator: HttpGenerator, upstream: Upstream
) -> None:
    minted = generator.create(CONTEXT)
    generator.apply(CONTEXT, minted.value)
    generator.test(CONTEXT, minted.value)

    assert upstream.state.bad_signatures == 0


def test_verify_passes_only_after_apply(generator: HttpGenerator) -> None:
    value = Sensitive.from_text("never-applied")

    assert not generator.test(CONTEXT, value)


def test_revoke_names_the_credential_by_ref_and_fingerprint_only(
    generator: HttpGenerator, upstream: Upstream
) -> None:
    generator.revoke(CONTEXT, Sensitive.from_text("old-value"), "cred-1")

    sent = upstream.state.revoked[-1]
    assert (sent["ref"], sent["fingerprint"]) == ("cred-1", fingerprint("old-value"))
    assert b"old-value" not in upstream.state.bodies[-1]


def test_a_server_error_is_retried(
    generator: HttpGenerator, upstream: Upstream
) -> None:
    upstream.state.failures["apply"] = [503, 502]

    generator.apply(CONTEXT, Sensitive.from_text("v"))

    assert "v" in upstream.state.applied


def test_a_refusal_fails_without_quoting_the_upstream(
    generator: HttpGenerator, upstream: Upstream
) -> None:
    upstream.state.failures["apply"] = [400]

    with pytest.raises(BackendError) as raised:
        generator.apply(CONTEXT, Sensitive.from_text("v2"))

    assert "400" in raised.value.message
    assert "SECRET_VALUE" not in raised.value.message


def test_an_endpoint_the_settings_do_not_name_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="endpoint"):
        HttpGenerator.from_params({"endpoint": "elsewhere"}, RotationSettings())


def test_a_plain_http_endpoint_is_refused_by_the_settings(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        GeneratorEndpoint(url="http://minter.internal", hmac_key_file=tmp_path)
