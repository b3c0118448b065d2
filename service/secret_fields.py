"""One field of a secret whose value is a JSON object: a read's `?field=NAME`.

The value is read the one strict way every JSON text is (service/json_body.py).
A value that is not such an object, or has no such field, is a 400 that never
holds the value or a piece of it (case C17); it names the field only when the
name has the shape of an identifier, so an answer never carries arbitrary text
the caller sent.
"""

from __future__ import annotations

import json
import re
from typing import Final

from backends.base import SecretVersion
from service.errors import InvalidRequest
from service.json_body import MalformedJson, loads

MAX_FIELD_LENGTH: Final = 256
_SHOWN: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def check_field_name(field: str) -> None:
    """Raise InvalidRequest unless `field` can name a field at all."""
    if not 0 < len(field) <= MAX_FIELD_LENGTH:
        raise InvalidRequest(f"field must be 1 to {MAX_FIELD_LENGTH} characters long")


def field_text(found: SecretVersion, field: str) -> str:
    """The field's value: a string as it is, anything else as its JSON text.

    Raises InvalidRequest when the value is not a JSON object or lacks the field.
    """
    document = _object(found)
    if document is None:
        raise InvalidRequest(
            f"secret is not a JSON object; cannot extract {_field(field)}"
        )
    if field not in document:
        raise InvalidRequest(f"secret has no {_field(field)}")
    value = document[field]
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except ValueError:
        # A number too large for a float (1e400) reads as infinity.
        raise InvalidRequest(f"{_field(field)} holds a number out of range") from None


def _object(found: SecretVersion) -> dict[str, object] | None:
    if found.info.binary:
        return None
    try:
        # The error says where the text went wrong, never what it holds.
        document = loads(found.value.reveal())
    except MalformedJson:
        return None
    return document if isinstance(document, dict) else None


def _field(field: str) -> str:
    return f"field {field!r}" if _SHOWN.fullmatch(field) else "the field asked for"
