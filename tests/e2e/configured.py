"""A real broker process over a configuration file with two environments."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.broker_process import BrokerProcess, run_cli

LOCAL = {"default_backend": "local", "backends": {"local": {"type": "local"}}}


@dataclass
class Configured:
    """The process, its configuration file, and each environment's admin secret."""

    process: BrokerProcess
    config: Path
    admin_secrets: dict[str, str]


def write_config(folder: Path, environments: dict[str, Any] | None = None) -> Path:
    """A configuration with a fresh key and a SQLite store in `folder`."""
    key = folder / "kek.key"
    if not key.exists():
        assert run_cli(folder, "keygen", str(key)).returncode == 0
    path = folder / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "store": f"sqlite:///{folder / 'state.db'}",
                "encryption_key_file": str(key),
                "environments": environments or {"dev": LOCAL, "prod": LOCAL},
            }
        )
    )
    return path


def start(folder: Path, *arguments: str) -> Configured:
    """Bootstrap an admin in every environment, then serve the configuration."""
    config = write_config(folder)
    secrets = {}
    for env in ("dev", "prod"):
        done = run_cli(folder, "bootstrap", "--config", str(config), "--env", env,
                       "--json")  # fmt: skip
        assert done.returncode == 0, done.stderr
        secrets[env] = json.loads(done.stdout)["client_secret"]
    process = BrokerProcess(folder, ["--config", str(config), *arguments], {})
    return Configured(process, config, secrets)
