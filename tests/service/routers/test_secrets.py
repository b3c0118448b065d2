"""The secrets routes over the whole application: what a read takes and answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import FakeClock
from tests.service.harness import LocalBroker, local_broker

SECRET_VALUE = "<SECRET_VALUE>"
DOCUMENT = json.dumps({"user": "svc", "password": SECRET_VALUE, "port": 5432})


@pytest.fixture
def local(tmp_path: Path, clock: FakeClock) -> Iterator[LocalBroker]:
    with local_broker(tmp_path, clock) as broker:
        yield broker


def call(
    local: LocalBroker,
    method: str,
    name: str,
    headers: dict[str, str] | None = None,
    **options: object,
) -> httpx.Response:
    """One request as the admin; `headers` are sent beside its token."""
    sent = {**local.bearer(local.admin_token("dev")), **(headers or {})}
    return local.call(method, f"/v1/dev/secrets/{name}", headers=sent, **options)


def put(local: LocalBroker, name: str, value: str) -> str:
    response = call(local, "PUT", name, json={"value": value})
    assert response.status_code == 200, response.text
    return str(response.json()["version"])


def test_a_field_of_a_json_secret_is_answered_alone(local: LocalBroker) -> None:
    """Case C17: `?field=` answers that field as text, marked with its name."""
    version = put(local, "app/db", DOCUMENT)

    body = call(local, "GET", "app/db", params={"field": "user"}).json()

    assert (body["value"], body["field"], body["version"]) == ("svc", "user", version)
    assert (body["encoding"], body["type"]) == ("text", "text")


def test_a_field_that_is_not_a_string_is_its_json_text(local: LocalBroker) -> None:
    """A number comes back as the JSON text of the number."""
    put(local, "app/db", DOCUMENT)

    body = call(local, "GET", "app/db", params={"field": "port"}).json()

    assert body["value"] == "5432"


def test_a_field_of_an_older_version_reads_with_its_id(local: LocalBroker) -> None:
    """`field` goes with `version`: the field of the version asked for."""
    first = put(local, "app/db", DOCUMENT)
    put(local, "app/db", json.dumps({"user": "new"}))

    body = call(local, "GET", "app/db", params={"version": first, "field": "user"})

    assert body.json()["value"] == "svc"


def test_a_field_of_a_plain_text_secret_is_400_without_the_value(
    local: LocalBroker,
) -> None:
    """Case C17(a): the answer says why and holds nothing of the value."""
    put(local, "app/token", SECRET_VALUE)

    response = call(local, "GET", "app/token", params={"field": "password"})

    assert response.status_code == 400
    assert response.json()["error_description"] == (
        "secret is not a JSON object; cannot extract field 'password'"
    )
    assert SECRET_VALUE not in response.text


@pytest.mark.parametrize(
    "params",
    [
        pytest.param("versoin=1", id="misspelt"),
        pytest.param("version=1&version=2", id="repeated"),
        pytest.param("stage=previous&nonce=<b>hi</b>", id="beside-a-known-one"),
    ],
)
def test_an_unknown_or_repeated_query_parameter_is_400_naming_the_allowed_ones(
    local: LocalBroker, params: str
) -> None:
    """A misspelt parameter never quietly reads the current version."""
    put(local, "app/db", "one")
    put(local, "app/db", "two")

    response = call(local, "GET", f"app/db?{params}")

    assert response.status_code == 400
    description = response.json()["error_description"]
    assert "version, stage and field" in description
    assert "versoin" not in description and "nonce" not in description


@pytest.mark.parametrize(
    "media_type",
    ["text/plain", "application/x-www-form-urlencoded",
     "application/json; charset=latin1"],
    ids=["text", "form", "latin1"],
)  # fmt: skip
def test_a_write_of_another_media_type_is_415_and_writes_nothing(
    local: LocalBroker, media_type: str
) -> None:
    """Only application/json (UTF-8) is read as a JSON body."""
    response = call(
        local, "PUT", "app/db", {"Content-Type": media_type}, content=b'{"value": "x"}'
    )

    assert response.status_code == 415
    assert "application/json" in response.json()["error_description"]
    assert call(local, "GET", "app/db").status_code == 404


def test_a_write_without_a_content_type_is_read_as_json(local: LocalBroker) -> None:
    """A body with no Content-Type at all is taken as JSON."""
    response = call(local, "PUT", "app/db", content=b'{"value": "x"}')

    assert response.status_code == 200


def test_a_fullwidth_digit_in_if_match_is_400_and_writes_nothing(
    local: LocalBroker,
) -> None:
    """A fullwidth digit two (its UTF-8 bytes) is no tag, never read as 2."""
    put(local, "app/db", "one")
    put(local, "app/db", "two")
    headers = [
        ("Authorization", f"Bearer {local.admin_token('dev')}"),
        ("If-Match", "\N{FULLWIDTH DIGIT TWO}".encode()),
    ]

    response = local.call(
        "PUT", "/v1/dev/secrets/app/db", headers=headers, json={"value": "three"}
    )

    assert response.status_code == 400
    assert call(local, "GET", "app/db").json()["value"] == "two"
