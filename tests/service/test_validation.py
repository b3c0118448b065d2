"""Validation problems told in the schema's terms, never the caller's."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from service.validation import describe, model_at

CANARY = "CANARY-7f3a"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Step(_Strict):
    name: str
    retries: int = 0


class Plan(_Strict):
    steps: tuple[Step, ...] = ()
    by_name: dict[str, Step] = {}
    first: Step | None = None


def problems(data: object) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        Plan.model_validate(data)
    return describe(caught.value.errors(include_input=False), Plan)


def test_model_at_follows_fields_lists_mappings_and_optionals() -> None:
    assert model_at(Plan, ()) is Plan
    assert model_at(Plan, ("steps", 3)) is Step
    assert model_at(Plan, ("by_name", "anything")) is Step
    assert model_at(Plan, ("first",)) is Step
    assert model_at(Plan, ("first", "name")) is None
    assert model_at(Plan, ("nowhere",)) is None


def test_an_unknown_field_is_placed_and_the_allowed_ones_listed() -> None:
    assert problems({"steps": [{"name": "a"}, {"name": "b", CANARY: 1}]}) == [
        "steps[1] has a field this endpoint does not accept; allowed: name, retries"
    ]


def test_a_mapping_key_of_the_caller_is_hidden() -> None:
    found = problems({"by_name": {CANARY: {"name": "a", "retries": "many"}}})

    assert found == ["by_name.<key>.retries: " + found[0].split(": ", 1)[1]]
    assert CANARY not in found[0]


def test_without_a_model_only_the_unknown_key_is_dropped() -> None:
    details = [
        {"type": "extra_forbidden", "loc": ("body", CANARY), "msg": "m", "input": 1},
        {"type": "int_parsing", "loc": ("query", "page_size"), "msg": "m", "input": 1},
    ]

    assert describe(details) == [  # type: ignore[arg-type]
        "body has a field this endpoint does not accept",
        "query.page_size: m",
    ]
