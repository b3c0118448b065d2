"""The policies routes over the whole application: what a change must pass."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.conftest import FakeClock
from tests.service.harness import LocalBroker, local_broker

ROTATED = """\
secrets:
  payments/key:
    rotation: {{every: 30d, grace: 1h, generator: {generator}}}
"""
GENERATOR_FIELD = "secrets.payments/key.rotation.generator"


@pytest.fixture
def local(tmp_path: Path, clock: FakeClock) -> Iterator[LocalBroker]:
    with local_broker(tmp_path, clock) as broker:
        yield broker


@pytest.mark.parametrize(
    ("generator", "problem"),
    [
        ("{type: random, length: 12}",
         "length: must be an integer from 16 to 4096"),
        ("{type: random, alphabet: 'a'}",
         "alphabet: must be one of alphanumeric, hex, base64url, printable"),
        ("{type: random, lenght: 48}",
         ": key 2 is not a known field; allowed: type, length, alphabet"),
        ("{type: nosuchgen}", "type: no generator of this type is installed"),
        ("{type: http, endpoint: nosuch}",
         "endpoint: must name one of rotation.endpoints"),
    ],
    ids=["short", "alphabet", "misspelt-key", "unknown-type", "unknown-endpoint"],
)  # fmt: skip
def test_a_policy_with_a_bad_generator_is_refused_before_any_rotation(
    local: LocalBroker, generator: str, problem: str
) -> None:
    """Refused whole, naming the field; a dry run too."""
    document = ROTATED.format(generator=generator)

    answer = local.put_policy("dev", "keys", document)
    dry = local.call(
        "PUT", "/v1/dev/policies/keys", params={"dry_run": "true"}, content=document,
        headers=local.bearer(local.admin_token("dev")),
    )  # fmt: skip

    expected = f"policy 'keys': {GENERATOR_FIELD}" + (
        problem if problem.startswith(":") else f".{problem}"
    )
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_policy")
    assert answer.json()["error_description"] == expected
    assert dry.status_code == 400
    assert (
        local.call(
            "GET",
            "/v1/dev/policies/keys",
            headers=local.bearer(local.admin_token("dev")),
        ).status_code
        == 404
    )


def test_a_policy_with_good_generators_is_applied(local: LocalBroker) -> None:
    document = ROTATED.format(generator="{type: random, length: 16, alphabet: hex}")

    assert local.put_policy("dev", "keys", document).status_code == 200
