"""Strict JSON bodies, and validation problems that never repeat the input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict

from service.errors import InvalidRequest, UnsupportedMediaType
from service.json_body import MalformedJson, loads, read_model
from tests.service.conftest import FakeClock
from tests.service.harness import LocalBroker, local_broker

CANARY = "CANARY-7f3a"


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: str
    encoding: Literal["text", "base64"] = "text"


def refusal(text: str | bytes) -> MalformedJson:
    with pytest.raises(MalformedJson) as caught:
        loads(text)
    return caught.value


def test_an_object_is_read() -> None:
    assert loads(b'{"value": "x", "n": [1, 2.5, null, true]}') == {
        "value": "x",
        "n": [1, 2.5, None, True],
    }


@pytest.mark.parametrize(
    "text",
    [
        b'{"value": "a", "value": "b"}',
        b'{"outer": {"k": 1, "k": 2}}',
        b'[{"k": 1}, {"k": 1, "k": 1}]',
    ],
    ids=["top-level", "nested", "in-a-list"],
)
def test_a_key_twice_in_one_object_is_refused(text: bytes) -> None:
    assert refusal(text).problem == "duplicate key in a JSON object"


def test_the_same_key_in_two_objects_is_fine() -> None:
    assert loads(b'[{"k": 1}, {"k": 2}]') == [{"k": 1}, {"k": 2}]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (b'{"value": NaN}', "NaN and Infinity are not JSON values"),
        (b'{"value": -Infinity}', "NaN and Infinity are not JSON values"),
        (b'{"value": "\xff"}', "not UTF-8 text"),
        ('{"value": "x"}'.encode("utf-16"), "not UTF-8 text"),
        (b'{"value": "\\ud800"}', "a string is not valid Unicode"),
        (b'{"\\udfff": 1}', "a string is not valid Unicode"),
        (b"[" * 33 + b"]" * 33, "nested too deeply"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"n": ' + b"9" * 5000 + b"}", "a number has too many digits"),
    ],
    ids=[
        "nan", "infinity", "invalid-utf8", "utf16", "lone-surrogate",
        "lone-surrogate-key", "33-levels", "100000-levels", "huge-number",
    ],
)  # fmt: skip
def test_what_is_not_strict_json_is_refused(text: bytes, problem: str) -> None:
    assert refusal(text).problem == problem


def test_a_surrogate_pair_is_one_character() -> None:
    assert loads(b'"\\ud83d\\udd10"') == "\U0001f510"


def test_32_levels_are_allowed() -> None:
    assert loads(b"[" * 32 + b"]" * 32) is not None


def test_a_syntax_error_names_its_line_not_its_content() -> None:
    error = refusal(f'{{"a": 1,\n "{CANARY}"}}'.encode())

    assert (error.line, error.message) == (2, "body: line 2: not valid JSON")
    assert error.status == 400


def test_a_body_is_read_into_its_model() -> None:
    assert read_model(Body, b'{"value": "x"}', media_type=None) == Body(value="x")


def test_an_unknown_field_is_described_without_its_key() -> None:
    with pytest.raises(InvalidRequest) as caught:
        read_model(Body, f'{{"value": "x", "{CANARY}": 1}}'.encode(), media_type=None)

    assert caught.value.message == (
        "the body has a field this endpoint does not accept; allowed: value, encoding"
    )


def test_a_wrong_value_is_described_without_the_value() -> None:
    with pytest.raises(InvalidRequest) as caught:
        read_model(
            Body,
            f'{{"value": {{"{CANARY}": 1}}, "encoding": "{CANARY}"}}'.encode(),
            media_type=None,
        )

    assert CANARY not in caught.value.message
    assert caught.value.message.startswith("value: ")


@pytest.mark.parametrize(
    "media_type",
    [
        pytest.param("application/json", id="json"),
        pytest.param("Application/JSON; charset=UTF-8", id="utf-8-charset"),
        pytest.param('application/json; charset="utf-8"', id="quoted-charset"),
        pytest.param(None, id="none-given"),
    ],
)
def test_a_json_body_may_name_its_type_or_not(media_type: str | None) -> None:
    """JSON, UTF-8 if a charset is named; a body with no Content-Type is JSON."""
    body = read_model(Body, b'{"value": "x"}', media_type=media_type)

    assert body == Body(value="x")


@pytest.mark.parametrize(
    "media_type",
    [
        pytest.param("text/plain", id="text"),
        pytest.param("application/x-www-form-urlencoded", id="form"),
        pytest.param("application/json; charset=latin1", id="latin1-charset"),
        pytest.param("application/json-seq", id="json-like"),
        pytest.param("", id="empty"),
    ],
)
def test_a_body_of_another_media_type_is_415_naming_json(media_type: str) -> None:
    """The answer names what is accepted, never the type sent."""
    with pytest.raises(UnsupportedMediaType) as caught:
        read_model(Body, b'{"value": "x"}', media_type=media_type)

    assert caught.value.message == "the body must be application/json (UTF-8)"


# Every route that reads a JSON body, with a body it would otherwise take.
JSON_ROUTES = [
    pytest.param("PUT", "secrets/app/db", {"value": "x"}, id="secret-write"),
    pytest.param("POST", "secrets/app/db/compromise", {"reason": "leaked"},
                 id="secret-compromise"),
    pytest.param("POST", "services/billing/compromise", {"reason": "leaked"},
                 id="service-compromise"),
    pytest.param("POST", "rotations", {"pattern": "app/*"}, id="bulk-rotation"),
]  # fmt: skip


@pytest.fixture
def local(tmp_path: Path, clock: FakeClock) -> Iterator[LocalBroker]:
    with local_broker(tmp_path, clock) as broker:
        yield broker


@pytest.mark.parametrize(("method", "path", "body"), JSON_ROUTES)
def test_every_json_route_answers_415_to_a_body_of_another_type(
    local: LocalBroker, method: str, path: str, body: dict[str, Any]
) -> None:
    """A JSON body sent as text or a form is refused before anything is done."""
    headers = {**local.bearer(local.admin_token("dev")), "Content-Type": "text/plain"}

    response = local.call(
        method, f"/v1/dev/{path}", headers=headers, content=json.dumps(body)
    )

    assert (response.status_code, response.json()["error"]) == (
        415, "unsupported_media_type",
    )  # fmt: skip
