"""The command line for people, round trip against a real broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.commands.client import VARIABLES
from tests.e2e import configured
from tests.e2e.broker_process import BrokerProcess
from tests.e2e.conftest import ADMIN_SECRET, DevBroker

pytestmark = pytest.mark.e2e

POLICY = """\
services:
  billing-api:
    secrets:
      read: ["payments/*"]
      write: ["payments/*"]
"""
VALUE = "sk_cli_example_value"
PUBLIC_URL = "http://broker.example:8090"


def tokenbroker(
    broker: DevBroker,
    *arguments: str,
    stdin: str | None = None,
    **variables: str,
) -> subprocess.CompletedProcess[str]:
    """`tokenbroker ARGUMENTS` as the admin, unless `variables` say otherwise."""
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "TOKENBROKER_URL": broker.process.url,
        "TOKENBROKER_ENV": "dev",
        "TOKENBROKER_CLIENT_ID": "admin",
        "TOKENBROKER_CLIENT_SECRET": ADMIN_SECRET,
        **variables,
    }
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *arguments],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        cwd=broker.process.folder,
        timeout=60,
        check=False,
    )


def answer(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def billing(dev_broker: DevBroker, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The billing policy applied, a secret stored, and billing's secret in a file."""
    folder = tmp_path_factory.mktemp("cli")
    policy = folder / "billing.yaml"
    policy.write_text(POLICY)
    assert tokenbroker(dev_broker, "policy", "apply", str(policy)).returncode == 0
    created = answer(
        tokenbroker(dev_broker, "service", "credentials", "billing-api", "--json")
    )
    secret_file = folder / "billing.secret"
    secret_file.write_text(created["client_secret"] + "\n")
    stored = tokenbroker(dev_broker, "secret", "put", "payments/stripe", stdin=VALUE)
    assert stored.returncode == 0, stored.stderr
    return secret_file


def _as_billing(secret_file: Path) -> dict[str, str]:
    return {"TOKENBROKER_CLIENT_ID": "billing-api",
            "TOKENBROKER_CLIENT_SECRET": secret_file.read_text().strip()}  # fmt: skip


def test_secret_get_prints_the_value_stored_by_secret_put(
    dev_broker: DevBroker, billing: Path
) -> None:
    done = tokenbroker(dev_broker, "secret", "get", "payments/stripe")

    assert done.stdout == VALUE + "\n"


def test_secret_list_names_what_the_caller_may_read(
    dev_broker: DevBroker, billing: Path
) -> None:
    done = tokenbroker(
        dev_broker, "secret", "list", "--prefix", "payments/", **_as_billing(billing)
    )

    assert done.stdout.split() == ["payments/stripe"]


def test_secret_refresh_prints_the_current_version_every_process_reads_now(
    dev_broker: DevBroker, billing: Path
) -> None:
    current = answer(tokenbroker(dev_broker, "secret", "get", "payments/stripe",
                                 "--json"))  # fmt: skip

    done = tokenbroker(dev_broker, "secret", "refresh", "payments/stripe")

    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"payments/stripe: refreshed; current version {current['version']}\n"
    )


def test_token_takes_its_credential_from_flags_and_a_secret_file(
    dev_broker: DevBroker, billing: Path
) -> None:
    done = tokenbroker(
        dev_broker, "token", "--client-id", "billing-api", "--client-secret-file",
        str(billing), "--scope", "secrets:read:payments/stripe", "--json",
        TOKENBROKER_CLIENT_ID="", TOKENBROKER_CLIENT_SECRET="",
    )  # fmt: skip

    assert answer(done)["scope"] == "secrets:read:payments/stripe"


def test_run_starts_the_command_with_the_named_secret_in_its_environment(
    dev_broker: DevBroker, billing: Path
) -> None:
    done = tokenbroker(
        dev_broker, "run", "--secret", "STRIPE_KEY=payments/stripe", "--",
        sys.executable, "-c", "import os; print(os.environ['STRIPE_KEY'])",
        **_as_billing(billing),
    )  # fmt: skip

    assert (done.returncode, done.stdout) == (0, VALUE + "\n")


def test_run_passes_on_the_exit_status_of_its_command(
    dev_broker: DevBroker, billing: Path
) -> None:
    done = tokenbroker(
        dev_broker, "run", "--", sys.executable, "-c", "raise SystemExit(7)"
    )

    assert done.returncode == 7


def test_policy_explain_names_the_rule_that_grants(
    dev_broker: DevBroker, billing: Path
) -> None:
    done = tokenbroker(
        dev_broker, "policy", "explain", "--service", "billing-api",
        "--scope", "secrets:read:payments/stripe", "--json",
    )  # fmt: skip

    explained = answer(done)
    assert (explained["allowed"], explained["document"]) == (True, "billing")


def test_policy_apply_dry_run_shows_the_grants_it_would_add(
    dev_broker: DevBroker, billing: Path, tmp_path: Path
) -> None:
    wider = tmp_path / "billing.yaml"
    wider.write_text(POLICY + '      rotate: ["payments/*"]\n')

    done = tokenbroker(dev_broker, "policy", "apply", str(wider), "--dry-run")

    assert "billing-api: + secrets:rotate:payments/*" in done.stdout


def test_policy_check_reports_file_line_and_field_offline(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(POLICY + "    max_ttl: forever\n")

    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "policy", "check", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": os.environ.get("PATH", "")},
    )  # fmt: skip

    assert done.returncode == 1
    assert f"{tmp_path / 'bad.yaml'}:6: services.billing-api.max_ttl:" in done.stdout


def test_policy_check_reports_bad_generators_and_with_config_endpoint_names(
    tmp_path: Path,
) -> None:
    """A short random length always; an unknown http endpoint once the
    configuration says which endpoints there are."""
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "keys.yaml").write_text(
        "secrets:\n"
        "  payments/a:\n"
        "    rotation: {every: 30d, grace: 1h, generator: {type: random, length: 12}}\n"
        "  payments/b:\n"
        "    rotation: {every: 30d, grace: 1h, generator: {type: http, endpoint: x}}\n"
    )
    config = configured.write_config(tmp_path, {"dev": configured.LOCAL})

    def check(*options: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "service.cli", "policy", "check", *options,
             str(policies)],
            capture_output=True, text=True, timeout=60, check=False,
            env={"PATH": os.environ.get("PATH", "")},
        )  # fmt: skip

    offline, known = check(), check("--config", str(config), "--env", "dev")

    short = "keys.yaml:3: secrets.payments/a.rotation.generator.length:"
    endpoint = "keys.yaml:5: secrets.payments/b.rotation.generator.endpoint:"
    assert (offline.returncode, known.returncode) == (1, 1)
    assert short in offline.stdout and endpoint not in offline.stdout
    assert short in known.stdout and endpoint in known.stdout


def test_serve_prints_where_it_listens_and_its_public_url_when_they_differ(
    tmp_path: Path,
) -> None:
    """A replica behind a balancer: its own port, and the issuer's URL. A fresh
    store's first keys raise no alert either."""
    config = configured.write_config(tmp_path)
    settings = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**settings, "public_url": PUBLIC_URL}))

    process = BrokerProcess(tmp_path, ["--config", str(config)], {})
    process.stop()

    output = process.output()
    assert (
        f"tokenbroker serving dev, prod at http://127.0.0.1:{process.port} "
        f"(public URL {PUBLIC_URL})\n"
    ) in output
    assert "signing_key_unavailable" not in output


def test_audit_export_streams_the_reads_as_json_lines(
    dev_broker: DevBroker, billing: Path
) -> None:
    tokenbroker(dev_broker, "secret", "get", "payments/stripe")

    done = tokenbroker(dev_broker, "audit", "export")

    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert any(r["action"] == "secret.read" for r in records)
    assert VALUE not in done.stdout


def test_audit_verify_over_http_proves_the_chain_intact(
    dev_broker: DevBroker, billing: Path
) -> None:
    done = tokenbroker(dev_broker, "audit", "verify", "--json")

    assert answer(done)["intact"] is True


def test_service_revoke_stops_the_tokens_the_service_holds(
    dev_broker: DevBroker, billing: Path
) -> None:
    held = answer(tokenbroker(dev_broker, "token", "--json", **_as_billing(billing)))

    done = tokenbroker(dev_broker, "service", "revoke", "billing-api")

    assert done.stdout == "billing-api: tokens revoked\n"
    refused = dev_broker.client.get_secret(held["access_token"], "payments/stripe")
    assert refused.status_code == 401


def test_service_revoke_disable_refuses_new_tokens_until_enabled(
    dev_broker: DevBroker, billing: Path
) -> None:
    tokenbroker(dev_broker, "service", "revoke", "billing-api", "--disable")
    refused = tokenbroker(dev_broker, "secret", "get", "payments/stripe",
                          **_as_billing(billing))  # fmt: skip

    enabled = tokenbroker(dev_broker, "service", "enable", "billing-api")
    served = tokenbroker(dev_broker, "secret", "get", "payments/stripe",
                         **_as_billing(billing))  # fmt: skip

    assert (refused.returncode, "invalid_client" in refused.stderr) == (1, True)
    assert enabled.stdout == "billing-api: enabled\n"
    assert served.stdout == VALUE + "\n"


def test_key_rotate_publishes_a_key_that_key_list_shows_waiting(
    dev_broker: DevBroker,
) -> None:
    rotated = answer(
        tokenbroker(dev_broker, "key", "rotate", "--overlap", "3600", "--json")
    )

    listed = answer(tokenbroker(dev_broker, "key", "list", "--json"))

    states = {key["kid"]: key["state"] for key in listed["keys"]}
    assert states[rotated["kid"]] == "published"


def test_key_revoke_withdraws_the_signing_key_and_names_its_replacement(
    dev_broker: DevBroker, billing: Path
) -> None:
    listed = answer(tokenbroker(dev_broker, "key", "list", "--json"))
    signing = next(key["kid"] for key in listed["keys"] if key["state"] == "signing")

    done = tokenbroker(dev_broker, "key", "revoke", signing, "--reason", "drill")

    assert done.stdout.startswith(f"{signing}: revoked; ")
    served = tokenbroker(dev_broker, "secret", "get", "payments/stripe",
                         **_as_billing(billing))  # fmt: skip
    assert served.stdout == VALUE + "\n"


def test_a_refused_request_exits_1_with_the_brokers_reason(
    dev_broker: DevBroker, billing: Path
) -> None:
    done = tokenbroker(
        dev_broker, "secret", "get", "payroll/db", **_as_billing(billing)
    )

    assert done.returncode == 1
    assert "403" in done.stderr


def test_a_missing_broker_url_exits_2_saying_which_setting(
    dev_broker: DevBroker,
) -> None:
    done = tokenbroker(dev_broker, "secret", "list", TOKENBROKER_URL="")

    assert done.returncode == 2
    assert "TOKENBROKER_URL" in done.stderr


PRINT_ENVIRONMENT = "import json, os; print(json.dumps(dict(os.environ)))"


@pytest.mark.parametrize("credential", ["client-secret", "token"])
def test_run_keeps_the_broker_credentials_out_of_the_commands_environment(
    dev_broker: DevBroker, billing: Path, credential: str
) -> None:
    """CMD gets its secret and the rest of the environment, not the credential."""
    variables = {
        **_as_billing(billing),
        "KEEP_ME": "kept",
        "TOKENBROKER_STORE": "postgresql+psycopg://broker:pw@db/broker",
    }
    if credential == "token":
        token = answer(tokenbroker(dev_broker, "token", "--json", **variables))
        variables |= {"TOKENBROKER_TOKEN": token["access_token"],
                      "TOKENBROKER_CLIENT_SECRET": ""}  # fmt: skip

    done = tokenbroker(
        dev_broker, "run", "--secret", "STRIPE_KEY=payments/stripe", "--",
        sys.executable, "-c", PRINT_ENVIRONMENT, **variables,
    )  # fmt: skip

    child = answer(done)
    assert not {"TOKENBROKER_CLIENT_SECRET", "TOKENBROKER_TOKEN",
                "TOKENBROKER_STORE"} & child.keys()  # fmt: skip
    assert (child["STRIPE_KEY"], child["KEEP_ME"]) == (VALUE, "kept")
    assert child["TOKENBROKER_CLIENT_ID"] == "billing-api"


def test_run_of_a_command_that_does_not_exist_exits_127_in_one_line(
    dev_broker: DevBroker, tmp_path: Path
) -> None:
    """As a shell does: no traceback."""
    missing = str(tmp_path / "no-such-command")

    done = tokenbroker(dev_broker, "run", "--", missing)

    assert done.returncode == 127
    assert done.stderr == f"tokenbroker: run: {missing}: command not found\n"


def test_run_of_a_file_that_is_not_executable_exits_126_in_one_line(
    dev_broker: DevBroker, tmp_path: Path
) -> None:
    script = tmp_path / "script.sh"
    script.write_text("echo hello\n")
    script.chmod(0o644)

    done = tokenbroker(dev_broker, "run", "--", str(script))

    assert done.returncode == 126
    assert done.stderr == f"tokenbroker: run: {script}: permission denied\n"


def test_run_refuses_a_secret_with_a_nul_byte_naming_its_variable(
    dev_broker: DevBroker, billing: Path
) -> None:
    """No environment variable can hold it: one line, never the value."""
    stored = tokenbroker(dev_broker, "secret", "put", "payments/nul",
                         stdin="sk_nul_canary\x00tail")  # fmt: skip
    assert stored.returncode == 0, stored.stderr

    done = tokenbroker(
        dev_broker, "run", "--secret", "NUL_KEY=payments/nul", "--",
        sys.executable, "-c", "print('ran')",
    )  # fmt: skip

    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.count("\n") == 1
    assert "NUL_KEY" in done.stderr and "NUL byte" in done.stderr
    assert "sk_nul_canary" not in done.stderr


def test_run_refuses_json_as_a_usage_error(dev_broker: DevBroker) -> None:
    """`run` prints nothing of its own, so `--json` is refused, not ignored."""
    done = tokenbroker(dev_broker, "run", "--json", "--", sys.executable, "-c", "")

    assert done.returncode == 2
    assert "--json" in done.stderr


def test_policy_explain_exits_1_when_the_scope_is_denied(
    dev_broker: DevBroker, billing: Path
) -> None:
    """A script can test the verdict: allowed is 0, denied is 1."""
    done = tokenbroker(
        dev_broker, "policy", "explain", "--service", "billing-api",
        "--scope", "secrets:write:payroll/db",
    )  # fmt: skip

    assert (done.returncode, done.stdout.split(":")[0]) == (1, "denied")


def test_policy_explain_exits_2_when_the_broker_gives_no_answer(
    dev_broker: DevBroker, billing: Path
) -> None:
    """A refusal to explain (billing is no admin) is never read as denied."""
    done = tokenbroker(
        dev_broker, "policy", "explain", "--service", "billing-api",
        "--scope", "secrets:read:payments/stripe", **_as_billing(billing),
    )  # fmt: skip

    assert done.returncode == 2
    assert "403" in done.stderr


@pytest.mark.parametrize(
    ("flags", "stored"),
    [([], VALUE + "\r\n"), (["--strip-newline"], VALUE)],
    ids=["byte-exact", "strip-newline"],
)
def test_secret_put_keeps_a_final_newline_unless_asked_to_strip_it(
    dev_broker: DevBroker, billing: Path, flags: list[str], stored: str
) -> None:
    """Values are byte-exact by default; `--strip-newline` drops one newline."""
    name = f"payments/newline-{len(flags)}"
    put = tokenbroker(dev_broker, "secret", "put", name, *flags, stdin=VALUE + "\r\n")
    assert put.returncode == 0, put.stderr

    read = answer(tokenbroker(dev_broker, "secret", "get", name, "--json"))

    assert read["value"] == stored


def test_top_level_help_names_every_connection_variable() -> None:
    """`tokenbroker --help` lists each TOKENBROKER_* variable the commands read."""
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "--help"],
        capture_output=True, text=True, timeout=60, check=True,
        env={"PATH": os.environ.get("PATH", "")},
    )  # fmt: skip

    missing = [name for name in VARIABLES.values() if name not in done.stdout]
    assert missing == []
