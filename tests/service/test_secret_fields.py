"""One field of a JSON secret, and the errors that never show the value (C17)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from backends.base import SecretVersion, VersionInfo
from service.errors import InvalidRequest
from service.secret_fields import check_field_name, field_text
from service.sensitive import Sensitive

SECRET_VALUE = "<SECRET_VALUE>"


def version(value: bytes, *, binary: bool = False) -> SecretVersion:
    info = VersionInfo("1", datetime(2030, 1, 1, tzinfo=UTC), binary=binary)
    return SecretVersion("app/db", info, Sensitive(value))


def refusal(found: SecretVersion, field: str) -> str:
    with pytest.raises(InvalidRequest) as caught:
        field_text(found, field)
    return caught.value.message


def test_a_string_field_is_its_text() -> None:
    """A string comes back as it is, not quoted."""
    found = version(b'{"user": "svc", "password": "p\\u00e4ss"}')

    assert field_text(found, "password") == "päss"


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param(b'{"port": 5432}', "5432", id="number"),
        pytest.param(b'{"port": true}', "true", id="boolean"),
        pytest.param(b'{"port": null}', "null", id="null"),
        pytest.param(b'{"port": {"a": ["b", 1]}}', '{"a": ["b", 1]}', id="object"),
    ],
)
def test_any_other_field_is_its_json_text(document: bytes, expected: str) -> None:
    """Numbers, booleans, null and structures come back as JSON text."""
    assert field_text(version(document), "port") == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(SECRET_VALUE.encode(), id="plain-text"),
        pytest.param(b'{"password": "' + SECRET_VALUE.encode(), id="malformed-json"),
        pytest.param(b'["' + SECRET_VALUE.encode() + b'"]', id="json-array"),
        pytest.param(b'"' + SECRET_VALUE.encode() + b'"', id="json-string"),
        pytest.param(b'{"a": "' + SECRET_VALUE.encode() + b'", "a": 1}',
                     id="duplicate-key"),
    ],
)  # fmt: skip
def test_a_value_that_is_not_a_json_object_is_refused_without_the_value(
    value: bytes,
) -> None:
    """Case C17(a) and (c): the message names the field, never the value."""
    message = refusal(version(value), "password")

    assert message == "secret is not a JSON object; cannot extract field 'password'"


def test_a_binary_value_is_not_a_json_object() -> None:
    """Bytes are never parsed as JSON, whatever they hold."""
    message = refusal(version(b'{"password": "x"}', binary=True), "password")

    assert message.startswith("secret is not a JSON object")


def test_a_missing_field_is_refused_by_its_name() -> None:
    """An object without the field says so, and shows none of its keys."""
    message = refusal(version(b'{"user": "' + SECRET_VALUE.encode() + b'"}'), "pw")

    assert message == "secret has no field 'pw'"


def test_a_field_name_that_is_not_an_identifier_is_never_shown() -> None:
    """Arbitrary text the caller sent stays out of the answer."""
    message = refusal(version(SECRET_VALUE.encode()), "<script>x</script>")

    assert message == (
        "secret is not a JSON object; cannot extract the field asked for"
    )


@pytest.mark.parametrize("field", ["", "f" * 257], ids=["empty", "257-characters"])
def test_a_field_name_must_be_1_to_256_characters(field: str) -> None:
    """An empty or overlong name is refused before the secret is read."""
    with pytest.raises(InvalidRequest):
        check_field_name(field)
