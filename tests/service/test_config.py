"""Loading settings: the file, TOKENBROKER_* overrides, and clear refusals."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from service.config import Settings, load_settings
from service.errors import ConfigurationError

GOOD = """\
store: sqlite:///state.db
encryption_key_file: /run/kek
environments:
  dev:
    default_backend: local
    backends:
      local: {type: local}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_file_settings_load(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD))

    assert settings.environments["dev"].default_backend == "local"
    assert settings.max_secret_bytes == 65536


def test_environment_variable_overrides_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKENBROKER_MAX_SECRET_BYTES", "100")

    assert load_settings(write(tmp_path, GOOD)).max_secret_bytes == 100


@pytest.mark.parametrize(
    ("change", "key"),
    [
        pytest.param(("store: sqlite:///state.db", "store: mysql://canary-3f"), "store",
                     id="store-url"),
        pytest.param(("default_backend: local", "default_backend: canary-3f"),
                     "environments.dev", id="default-backend"),
        pytest.param(("environments:", "colour: canary-3f\nenvironments:"), "colour",
                     id="unknown-key"),
    ],
)  # fmt: skip
def test_bad_setting_names_file_and_key_never_the_value(
    tmp_path: Path, change: tuple[str, str], key: str
) -> None:
    path = write(tmp_path, GOOD.replace(*change))

    with pytest.raises(ConfigurationError) as caught:
        load_settings(path)

    assert f"{path}: {key}" in str(caught.value)
    assert "canary-3f" not in str(caught.value)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        load_settings(tmp_path / "absent.yaml")


def test_store_password_is_hidden_in_repr(tmp_path: Path) -> None:
    settings = load_settings(
        write(tmp_path, GOOD), store="postgresql+psycopg://u:canary-pw@db/x"
    )

    assert "canary-pw" not in repr(settings)


# TOKENBROKER_* variables: plain text, and errors that name the variable.


def _complex_leaves(
    model: type[BaseModel], path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every setting with a default that pydantic-settings would read as JSON
    only (a dataclass such as a rate), by key path."""
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _complex_leaves(annotation, (*path, name))
        elif dataclasses.is_dataclass(annotation) and field.default is not None:
            yield (*path, name), field.default


COMPLEX_LEAVES = list(_complex_leaves(Settings))


def test_the_text_settings_found_include_both_rate_limits() -> None:
    """The table below is not empty: it holds at least the reported fields."""
    assert {
        ("rate_limits", "failed_auth_per_client"),
        ("rate_limits", "failed_auth_per_address"),
    } <= dict(COMPLEX_LEAVES).keys()


@pytest.mark.parametrize(
    ("path", "default"), COMPLEX_LEAVES, ids=[".".join(p) for p, _ in COMPLEX_LEAVES]
)
def test_every_text_setting_takes_plain_text_from_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: tuple[str, ...], default: Any
) -> None:
    """`TOKENBROKER_RATE_LIMITS__FAILED_AUTH_PER_CLIENT=10/m`, no JSON quotes."""
    monkeypatch.setenv("TOKENBROKER_" + "__".join(path).upper(), str(default))

    settings: Any = load_settings(write(tmp_path, GOOD))
    for part in path:
        settings = getattr(settings, part)

    assert settings == default


def test_rate_set_by_variable_overrides_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reported case: a plain `5/m` wins over the file's rate."""
    monkeypatch.setenv("TOKENBROKER_RATE_LIMITS__FAILED_AUTH_PER_CLIENT", "5/m")
    text = GOOD + "rate_limits: {failed_auth_per_client: 20/m}\n"

    limits = load_settings(write(tmp_path, text)).rate_limits

    assert str(limits.failed_auth_per_client) == "5/m"


def test_json_still_sets_a_whole_list_from_a_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lists and mappings have no plain form; JSON keeps working for them."""
    monkeypatch.setenv("TOKENBROKER_ALLOW_SHARED_BACKENDS", '[["dev.a", "prod.a"]]')

    settings = load_settings(write(tmp_path, GOOD))

    assert settings.allow_shared_backends == (("dev.a", "prod.a"),)


@pytest.mark.parametrize(
    ("variable", "message"),
    [
        pytest.param("TOKENBROKER_RATE_LIMITS__FAILED_AUTH_PER_CLIENT",
                     "rate_limits.failed_auth_per_client: expected a rate", id="rate"),
        pytest.param("TOKENBROKER_ROTATION__TICK_SECONDS",
                     "rotation.tick_seconds: Input should be a valid number",
                     id="number"),
        pytest.param("TOKENBROKER_WEBHOOKS",
                     "webhooks: Input should be a valid tuple; a variable gives a "
                     "list or mapping as JSON", id="list"),
    ],
)  # fmt: skip
def test_bad_variable_is_named_never_the_file_or_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, message: str
) -> None:
    """The error says which variable is wrong, not that the file is bad YAML."""
    monkeypatch.setenv(variable, "canary-3f")
    path = write(tmp_path, GOOD)

    with pytest.raises(ConfigurationError) as caught:
        load_settings(path)

    assert f"{variable}: {message}" in caught.value.message
    assert str(path) not in caught.value.message
    assert "canary-3f" not in caught.value.message


def test_problem_a_variable_may_have_caused_names_file_and_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A check over a whole environment names every place its keys came from."""
    variable = "TOKENBROKER_ENVIRONMENTS__DEV__DEFAULT_BACKEND"
    monkeypatch.setenv(variable, "canary-3f")
    path = write(tmp_path, GOOD)

    with pytest.raises(ConfigurationError) as caught:
        load_settings(path)

    assert f"{path} or {variable}: environments.dev: " in caught.value.message


def test_yaml_syntax_error_names_file_and_line_never_the_text(tmp_path: Path) -> None:
    """A broken file is refused with its line, not with a traceback."""
    path = write(tmp_path, GOOD + "public_url: [canary-3f\n")

    with pytest.raises(ConfigurationError) as caught:
        load_settings(path)

    assert caught.value.message.startswith(f"{path}: not valid YAML at line 9")
    assert "canary-3f" not in caught.value.message
