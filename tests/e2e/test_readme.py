"""The README's walk-through runs exactly as printed against a fresh dev broker."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.broker_process import BrokerProcess

README = Path(__file__).parents[2] / "README.md"


def readme_block(heading: str) -> str:
    """The first ```sh block after a `## heading` of the README."""
    text = README.read_text(encoding="utf-8")
    section = text.split(f"## {heading}\n", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match, f"no sh block under {heading!r}"
    return match.group(1)


def test_walkthrough_prints_the_secret(tmp_path: Path) -> None:
    script = readme_block("Walk-through with curl")
    broker = BrokerProcess(tmp_path, ["--dev"], {})
    try:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin:/usr/local/bin", "BROKER": broker.url},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        broker.stop()

    assert result.returncode == 0, result.stderr
    # curl prints no newline after a body: the last answer starts at the last "{".
    last, _end = json.JSONDecoder().raw_decode(
        result.stdout[result.stdout.rfind("{") :]
    )
    assert last["name"] == "payments/stripe-key"
    assert last["value"] == "sk_live_example"


@pytest.mark.parametrize("heading", ["Start it", "Run the tests"])
def test_readme_commands_use_python_3_11(heading: str) -> None:
    assert readme_block(heading).startswith("python3.11 -m venv .venv && ")


def test_ci_runs_the_readme_test_command() -> None:
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")

    assert readme_block("Run the tests").strip() in ci


# What the walk-through's tokens are once their five minutes have passed.
EXPIRED = 'TOKEN="expired.step-5.token"; ADMIN_TOKEN="expired.step-1.token"\n'


def test_revocation_walkthrough_ends_with_the_token_refused(tmp_path: Path) -> None:
    """Even when the walk-through ran long ago: its token is shown to work
    before it is revoked, so the refusal is the revocation's."""
    script = (
        readme_block("Walk-through with curl") + EXPIRED + readme_block("Revocation")
    )
    broker = BrokerProcess(tmp_path, ["--dev"], {})
    try:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin:/usr/local/bin", "BROKER": broker.url},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        broker.stop()

    assert result.returncode == 0, result.stderr
    before, _, after = result.stdout.partition('{"active":false}')
    assert before.count('"value":"sk_live_example"') == 2
    assert after
    last, _end = json.JSONDecoder().raw_decode(
        result.stdout[result.stdout.rfind("{") :]
    )
    assert last["error"] == "invalid_token"
