"""The policies routes over the whole application: what a change must pass (its
generators checked, an admin still able to sign in after it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete

from service.store.tables import policy_documents
from tests.service.conftest import FakeClock
from tests.service.harness import ADMIN_SECRET, LocalBroker, local_broker

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


def test_deleting_the_only_admin_document_is_refused(local: LocalBroker) -> None:
    """Its admin could not undo it, and bootstrap would refuse the environment."""
    answer = local.call(
        "DELETE", "/v1/dev/policies/bootstrap-admin",
        headers=local.bearer(local.admin_token("dev")),
    )  # fmt: skip

    assert (answer.status_code, answer.json()["error"]) == (409, "conflict")
    assert (
        "no admin service that has a live credential"
        in (answer.json()["error_description"])
    )
    assert local.token_response("dev", "admin", ADMIN_SECRET, scope="admin").is_success


def test_replacing_the_admin_document_with_one_that_grants_no_admin_is_refused(
    local: LocalBroker,
) -> None:
    answer = local.put_policy("dev", "bootstrap-admin", "services:\n  admin: {}\n")

    assert answer.status_code == 409
    assert local.token_response("dev", "admin", ADMIN_SECRET, scope="admin").is_success


def test_the_admin_document_may_go_once_another_admin_has_a_credential(
    local: LocalBroker,
) -> None:
    local.put_policy("dev", "ops", "services:\n  ops-console: {admin: true}\n")
    secret = local.credential("dev", "ops-console")

    answer = local.call(
        "DELETE", "/v1/dev/policies/bootstrap-admin",
        headers=local.bearer(local.admin_token("dev")),
    )  # fmt: skip

    assert answer.status_code == 204
    assert local.token_response("dev", "ops-console", secret, scope="admin").is_success


def test_an_environment_locked_out_in_the_store_is_recovered_by_a_policy_folder(
    local: LocalBroker, tmp_path: Path
) -> None:
    """README's way back: `--policies DIR` with a document that makes admin admin."""
    with local.broker.engine.begin() as connection:
        connection.execute(
            delete(policy_documents).where(
                policy_documents.c.env == "dev",
                policy_documents.c.name == "bootstrap-admin",
            )
        )
    local.broker.reload_policy(local.broker.environments["dev"])
    locked = local.token_response("dev", "admin", ADMIN_SECRET, scope="admin")
    folder = tmp_path / "policies"
    (folder / "dev").mkdir(parents=True)
    (folder / "dev" / "admin.yaml").write_text("services: {admin: {admin: true}}\n")

    local.broker.load_policy_folder(folder)

    assert locked.json()["error"] == "invalid_scope"
    assert local.token_response("dev", "admin", ADMIN_SECRET, scope="admin").is_success
