"""Loading settings: the file, TOKENBROKER_* overrides, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import load_settings
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
