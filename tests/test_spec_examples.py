"""SPEC.md's examples work as printed: SPEC says they are checked, and this checks.

The YAML blocks are read from the shared SPEC at test time, so a change to the
contract is tested against the code the day it is made. Each block is checked
by the section it stands in; a block in a section with no check fails, so a new
example cannot go unchecked. Where the shared folder is absent (a clone checked
out on its own), the copy in tests/spec_examples.md stands in; beside SPEC, that
copy must match it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from backends import registry
from backends.vault_auth import credential_files
from policies.check import check_files
from service.clock import SystemClock
from service.config import Settings, load_settings
from service.errors import ConfigurationError

SPEC = Path(__file__).resolve().parents[1] / ".." / "shared" / "SPEC.md"
COPY = Path(__file__).resolve().parent / "spec_examples.md"
CHECKED_SECTIONS = ("Configuration", "Policy documents")


def yaml_blocks(source: Path | None = None) -> dict[str, list[str]]:
    """Every ```yaml block of SPEC.md (or its copy), by the `## ` section."""
    if source is None:
        source = SPEC if SPEC.is_file() else COPY
    blocks: dict[str, list[str]] = {}
    for section in re.split(r"^## ", source.read_text(encoding="utf-8"), flags=re.M):
        heading = section.split("\n", 1)[0].strip()
        found = re.findall(r"^```yaml\n(.*?)^```", section, re.M | re.S)
        if found:
            blocks[heading] = found
    return blocks


def spec_example(section: str) -> str:
    (block,) = yaml_blocks()[section]
    return block


def spec_settings(tmp_path: Path) -> Settings:
    path = tmp_path / "config.yaml"
    path.write_text(spec_example("Configuration"))
    return load_settings(path)


def test_the_copy_of_the_examples_matches_spec() -> None:
    """tests/spec_examples.md holds exactly SPEC's examples, section by section."""
    if not SPEC.is_file():
        pytest.skip(f"{SPEC} is absent: nothing to compare the copy with")
    copied: dict[str, list[str]] = {}
    for heading, blocks in yaml_blocks(COPY).items():
        copied.setdefault(heading, []).extend(blocks)

    assert copied == yaml_blocks(SPEC)


def test_every_yaml_example_of_spec_is_checked() -> None:
    """A YAML block in a section this module does not check fails the suite."""
    assert sorted(yaml_blocks()) == sorted(CHECKED_SECTIONS)


def test_spec_configuration_loads_and_every_backend_validates(
    tmp_path: Path,
) -> None:
    """The configuration example passes the settings loader and each backend's model."""
    settings = spec_settings(tmp_path)

    parsed = {
        (env, name): registry.parse_config(
            f"environments.{env}.backends.{name}", options
        )
        for env, config in settings.environments.items()
        for name, options in config.backends.items()
    }

    assert {kind.type for kind in parsed.values()} == {  # type: ignore[attr-defined]
        "local",
        "aws",
        "vault",
        "azure",
    }


def test_spec_vault_example_lacks_only_files_a_deployment_provides(
    tmp_path: Path,
) -> None:
    """`auth: {method: approle}` names every option; start-up wants only its files."""
    settings = spec_settings(tmp_path)
    options = settings.environments["prod"].backends["vault"]
    key = "environments.prod.backends.vault"
    config = registry.parse_config(key, options)
    files = credential_files(config.auth)  # type: ignore[attr-defined]
    unused: Any = None  # a vault backend takes only the environment and the clock
    context = registry.BackendContext("prod", unused, unused, SystemClock())
    missing = [option for option, path in files.items() if not path.exists()]
    if not missing:
        pytest.skip("this machine holds the default credential files")

    with pytest.raises(ConfigurationError) as refused:
        registry.build("vault", config, context)

    assert refused.value.message.startswith(
        f"{key}.auth.{missing[0]}: cannot read {files[missing[0]]}"
    )


def test_spec_policy_document_validates_against_the_spec_configuration(
    tmp_path: Path,
) -> None:
    """The policy example is valid, and its backends exist in the prod example."""
    backends = spec_settings(tmp_path).environments["prod"].backends
    document = tmp_path / "spec.yaml"
    document.write_text(spec_example("Policy documents"))

    problems = check_files([document], backends=list(backends))

    assert [str(problem) for problem in problems] == []
