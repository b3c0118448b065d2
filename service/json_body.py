"""JSON text read strictly: the one reading of every JSON body the broker takes.

Stricter than `json.loads` wherever a lax reading lets two parties disagree on
what was sent. A duplicate key is an error: a proxy or an audit tap may act on
the first `value` while the broker would store the last. NaN and Infinity are
not JSON, the text must be UTF-8 and every string valid Unicode, and nesting is
bounded. Errors say what is wrong and on which line, never what was sent.

    InvalidRequest (service.errors)
    └── MalformedJson       400 a body is not strict JSON
    UnsupportedMediaType    415 a request body is not application/json
"""

from __future__ import annotations

import json
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from service.errors import InvalidRequest
from service.media_types import body_media_type
from service.validation import describe

MAX_DEPTH: Final = 32
JSON_MEDIA_TYPE: Final = "application/json"
JSON_MEDIA_TYPES: Final = frozenset({JSON_MEDIA_TYPE})
Model = TypeVar("Model", bound=BaseModel)


class MalformedJson(InvalidRequest):
    """A body is not strict JSON; says what is wrong and, when known, the line."""

    def __init__(self, problem: str, line: int | None = None) -> None:
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"body: {where}{problem}")
        self.problem = problem
        self.line = line


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH) -> object:
    """The value `text` holds. Raises MalformedJson.

    Bytes must be UTF-8 (a leading byte order mark is allowed).
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise MalformedJson("not UTF-8 text") from None
    try:
        value = json.loads(
            text, object_pairs_hook=_object, parse_constant=_not_a_constant
        )
    except json.JSONDecodeError as error:
        raise MalformedJson("not valid JSON", error.lineno) from None
    except RecursionError:
        raise MalformedJson("nested too deeply") from None
    except ValueError:
        # int() refuses a number of more than sys.get_int_max_str_digits().
        raise MalformedJson("a number has too many digits") from None
    _check_tree(value, max_depth)
    return value


def read_model(model: type[Model], body: bytes, *, media_type: str | None) -> Model:
    """The `model` a JSON request body holds, given its Content-Type header.

    Raises UnsupportedMediaType unless the body is `application/json` (a
    charset, if named, UTF-8); a body without a Content-Type is taken as JSON,
    since nothing else is read here. Raises InvalidRequest for the rest;
    problems are described in the model's terms (service/validation.py).
    """
    body_media_type(
        media_type,
        JSON_MEDIA_TYPES,
        default=JSON_MEDIA_TYPE,
        refusal=f"the body must be {JSON_MEDIA_TYPE} (UTF-8)",
    )
    data = loads(body)
    try:
        return model.model_validate(data)
    except ValidationError as error:
        details = error.errors(include_input=False, include_url=False)
        raise InvalidRequest("; ".join(describe(details, model)[:5])) from None


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise MalformedJson("duplicate key in a JSON object")
    return found


def _not_a_constant(name: str) -> object:
    raise MalformedJson("NaN and Infinity are not JSON values")


def _check_tree(value: object, max_depth: int) -> None:
    """Refuse nesting over `max_depth` and strings that are not valid Unicode."""
    pending: list[tuple[object, int]] = [(value, 0)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, str):
            _check_text(node)
        elif isinstance(node, dict | list):
            if depth >= max_depth:
                raise MalformedJson("nested too deeply")
            children = node.items() if isinstance(node, dict) else enumerate(node)
            for key, child in children:
                if isinstance(key, str):
                    _check_text(key)
                pending.append((child, depth + 1))


def _check_text(text: str) -> None:
    # `\ud800` escapes a lone surrogate, which no UTF-8 store can hold.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedJson("a string is not valid Unicode") from None
