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
from service.rotation.generators import Minted
from service.sensitive import Sensitive


class Fixed:
    def create(self, context):
        return Minted(Sensitive.from_text("from-plugin"))


def factory(params, settings):
    return Fixed()
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


def test_a_plugin_generator_is_found_through_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tb_plugin_fixed.py").write_text(PLUGIN)
    info = tmp_path / "tb_plugin_fixed-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tb-plugin-fixed\n"
                                   "Version: 1.0\n")  # fmt: skip
    (info / "entry_points.txt").write_text(
        "[tokenbroker.generators]\nfixed = tb_plugin_fixed:factory\n"
    )
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])

    generator = GeneratorRegistry(RotationSettings()).build("fixed", {})

    assert generator.create(CONTEXT).value.reveal() == b"from-plugin"
