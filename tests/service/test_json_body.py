"""Strict JSON bodies, and validation problems that never repeat the input."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict

from service.errors import InvalidRequest
from service.json_body import MalformedJson, loads, read_model

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
    assert read_model(Body, b'{"value": "x"}') == Body(value="x")


def test_an_unknown_field_is_described_without_its_key() -> None:
    with pytest.raises(InvalidRequest) as caught:
        read_model(Body, f'{{"value": "x", "{CANARY}": 1}}'.encode())

    assert caught.value.message == (
        "the body has a field this endpoint does not accept; allowed: value, encoding"
    )


def test_a_wrong_value_is_described_without_the_value() -> None:
    with pytest.raises(InvalidRequest) as caught:
        read_model(
            Body, f'{{"value": {{"{CANARY}": 1}}, "encoding": "{CANARY}"}}'.encode()
        )

    assert CANARY not in caught.value.message
    assert caught.value.message.startswith("value: ")
