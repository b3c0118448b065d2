"""Generators: `random`, unknown types, and plugins through entry points."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from service.errors import InvalidRequest
from service.rotation.generators import (
    ALPHABETS,
    GeneratorRegistry,
    RandomGenerator,
    RotationContext,
)
from service.rotation.settings import RotationSettings

CONTEXT = RotationContext("dev", "app/db", "r1")
PLUGIN = """
from policies.model import GeneratorProblem
from service.rotation.generators import Minted
from service.sensitive import Sensitive


class Fixed:
    def create(self, context):
        return Minted(Sensitive.from_text("from-plugin"))


def factory(params, settings):
    return Fixed()


def validate(params, settings):
    if params.get("word") != "fixed":
        return [GeneratorProblem("must be the word fixed", "word")]
    return []


def checked(params, settings):
    return Fixed()


checked.validate = validate
"""


def test_random_generator_draws_the_requested_length_from_its_alphabet() -> None:
    generator = RandomGenerator.from_params(
        {"length": 48, "alphabet": "hex"}, RotationSettings()
    )

    value = generator.create(CONTEXT).value.reveal_text()

    assert len(value) == 48
    assert set(value) <= set(ALPHABETS["hex"])


def test_random_generator_never_repeats_a_value() -> None:
    generator = RandomGenerator.from_params({}, RotationSettings())

    values = {generator.create(CONTEXT).value.reveal() for _ in range(100)}

    assert len(values) == 100


@pytest.mark.parametrize(
    "params",
    [{"length": 8}, {"alphabet": "emoji"}, {"size": 10}, {"length": "32"}],
    ids=["too-short", "unknown-alphabet", "unknown-parameter", "length-as-text"],
)
def test_random_generator_refuses_bad_parameters(params: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        RandomGenerator.from_params(params, RotationSettings())


def test_an_unknown_generator_type_is_an_invalid_request() -> None:
    with pytest.raises(InvalidRequest, match="no generator"):
        GeneratorRegistry(RotationSettings()).build("nonesuch", {})


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed plugin: `fixed` offers no check, `checked` one of its own."""
    (tmp_path / "tb_plugin_fixed.py").write_text(PLUGIN)
    info = tmp_path / "tb_plugin_fixed-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tb-plugin-fixed\n"
                                   "Version: 1.0\n")  # fmt: skip
    (info / "entry_points.txt").write_text(
        "[tokenbroker.generators]\nfixed = tb_plugin_fixed:factory\n"
        "checked = tb_plugin_fixed:checked\n"
    )
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])


@pytest.mark.usefixtures("plugin")
def test_a_plugin_generator_is_found_through_its_entry_point() -> None:
    generator = GeneratorRegistry(RotationSettings()).build("fixed", {})

    assert generator.create(CONTEXT).value.reveal() == b"from-plugin"


@pytest.mark.parametrize(
    ("params", "message"),
    [({"length": 12}, "must be an integer from 16 to 4096"),
     ({"length": True}, "must be an integer from 16 to 4096"),
     ({"alphabet": "a"}, "must be one of alphanumeric, hex, base64url, printable")],
    ids=["short", "boolean", "alphabet"],
)  # fmt: skip
def test_random_parameters_are_checked_without_building_a_generator(
    params: dict[str, object], message: str
) -> None:
    [problem] = GeneratorRegistry(RotationSettings()).check("random", params)

    assert (problem.key, problem.message) == (next(iter(params)), message)


def test_a_misspelt_parameter_is_marked_unknown_and_not_repeated() -> None:
    [problem] = GeneratorRegistry(RotationSettings()).check("random", {"lenght": 48})

    assert (problem.key, problem.unknown) == ("lenght", True)
    assert "lenght" not in problem.message


def test_an_unknown_type_is_a_problem_of_the_type_field() -> None:
    [problem] = GeneratorRegistry(RotationSettings()).check("nosuchgen", {})

    assert (problem.key, problem.message) == (
        "type", "no generator of this type is installed",
    )  # fmt: skip


@pytest.mark.usefixtures("plugin")
def test_a_plugin_that_offers_a_check_validates_its_own_parameters() -> None:
    registry = GeneratorRegistry(RotationSettings())

    [problem] = registry.check("checked", {"word": "other"})

    assert (problem.key, problem.message) == ("word", "must be the word fixed")
    assert registry.check("checked", {"word": "fixed"}) == []


@pytest.mark.usefixtures("plugin")
def test_a_plugin_without_a_check_is_only_known_to_exist() -> None:
    assert GeneratorRegistry(RotationSettings()).check("fixed", {"any": 1}) == []
