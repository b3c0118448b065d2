"""The README's compromise walk-through runs as printed against a dev broker."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.e2e.broker_process import BrokerProcess
from tests.e2e.test_readme import EXPIRED, readme_block


def test_compromise_walkthrough_reports_the_reader_and_refuses_its_token(
    tmp_path: Path,
) -> None:
    """Even when the walk-through ran long ago and its tokens have expired."""
    script = (
        readme_block("Walk-through with curl")
        + EXPIRED
        + readme_block("Compromise response")
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
    decoder = json.JSONDecoder()
    report, _end = decoder.raw_decode(result.stdout, result.stdout.index('{"id"'))
    assert (report["state"], report["new_version"]) == ("contained", "2")
    assert [(s["service"], s["reads"]) for s in report["services"]] == [
        ("billing-api", 2)
    ]
    assert len(report["tokens_revoked"]) == 2
    last, _end = decoder.raw_decode(result.stdout[result.stdout.rfind("{") :])
    assert last["error"] == "invalid_token"
