"""Validation errors told in the schema's terms, never in the caller's.

pydantic's messages are templates that do not repeat the input, but an error's
location can: the location of an unknown field ends in that field's key, and a
key is whatever the caller typed (a secret pasted in the wrong place, say).
These helpers name a location by the schema's own field names and by list
positions only, and an unknown field by the fields allowed where it stands.
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from typing import Annotated, Any, Final, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import ErrorDetails

UNKNOWN_FIELD: Final = "extra_forbidden"
HIDDEN_KEY: Final = "<key>"
Location = Sequence[int | str]


def model_at(model: type[BaseModel], loc: Location) -> type[BaseModel] | None:
    """The model whose fields apply at `loc` inside `model`; None if none does.

    A mapping's keys and a list's positions lead to the type of its values.
    """
    current: Any = model
    for part in loc:
        current = _step(_unwrap(current), part)
        if current is None:
            return None
    current = _unwrap(current)
    return current if _is_model(current) else None


def allowed_fields(model: type[BaseModel]) -> str:
    """The fields of `model` as a phrase, in their declared order."""
    return ", ".join(field.alias or name for name, field in model.model_fields.items())


def describe(
    details: Sequence[ErrorDetails], model: type[BaseModel] | None = None
) -> list[str]:
    """One sentence per error of a request body or parameter, input never shown.

    With `model`, a location shows only that model's field names and list
    positions. Without one (FastAPI's own parameter checks, whose locations are
    a source and a declared parameter name) it shows the location as given,
    but for the key of an unknown field.
    """
    return [_sentence(detail, model) for detail in details]


def _sentence(detail: ErrorDetails, model: type[BaseModel] | None) -> str:
    loc = tuple(detail["loc"])
    if detail["type"] != UNKNOWN_FIELD:
        return f"{_location(loc, model) or 'body'}: {detail['msg']}"
    subject = _location(loc[:-1], model) or "the body"
    sentence = f"{subject} has a field this endpoint does not accept"
    expected = model_at(model, loc[:-1]) if model is not None else None
    if expected is None:
        return sentence
    return f"{sentence}; allowed: {allowed_fields(expected)}"


def _location(loc: Location, model: type[BaseModel] | None) -> str:
    path = ""
    for index, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        elif model is None or _is_field(model, loc[:index], part):
            path += f".{part}"
        else:
            path += f".{HIDDEN_KEY}"
    return path.removeprefix(".")


def _is_field(model: type[BaseModel], parent: Location, part: str) -> bool:
    found = model_at(model, parent)
    return found is not None and part in found.model_fields


def _step(annotation: Any, part: int | str) -> Any:
    if _is_model(annotation):
        field = annotation.model_fields.get(part) if isinstance(part, str) else None
        return None if field is None else field.annotation
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is dict and len(args) == 2:
        return args[1]
    if origin in (list, tuple, set, frozenset) and args:
        return args[0]
    return None


def _unwrap(annotation: Any) -> Any:
    """`X | None` and `Annotated[X, ...]` lead where X does."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
            continue
        if origin in (Union, types.UnionType):
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)
