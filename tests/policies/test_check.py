"""`tokenbroker policy check`: file, line and field of every problem, offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies.check import check_folder
from service.rotation.generators import GeneratorRegistry
from service.rotation.settings import RotationSettings

GOOD = """\
services:
  billing:
    secrets:
      read: ["payments/*"]
"""


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_folder_of_valid_documents_has_no_problems(tmp_path: Path) -> None:
    _write(tmp_path, "billing.yaml", GOOD)

    assert check_folder(tmp_path) == []


def test_a_bad_field_is_reported_with_its_file_line_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path, "billing.yaml", GOOD + "    max_ttl: forever\n")

    (problem,) = check_folder(tmp_path)

    assert (problem.file, problem.line) == (str(path), 5)
    assert problem.field == "services.billing.max_ttl"


def test_an_unknown_field_is_reported_at_its_line(tmp_path: Path) -> None:
    _write(tmp_path, "billing.yaml", GOOD + "    admn: true\n")

    (problem,) = check_folder(tmp_path)

    assert (problem.line, problem.field, problem.message) == (
        5, "services.billing",
        "key 2 is not a known field; allowed: "
        "admin, secrets, tokens, max_ttl, rate_limit",
    )  # fmt: skip


def test_a_missing_field_is_reported_at_its_parent(tmp_path: Path) -> None:
    text = "secrets:\n  db:\n    rotation:\n      every: 30d\n      grace: 1h\n"
    _write(tmp_path, "db.yaml", text)

    (problem,) = check_folder(tmp_path)

    assert (problem.line, problem.field) == (4, "secrets.db.rotation.generator")


def test_a_yaml_syntax_error_is_reported_with_its_line(tmp_path: Path) -> None:
    _write(tmp_path, "broken.yaml", "services:\n  a: [\n")

    (problem,) = check_folder(tmp_path)

    assert problem.line is not None and problem.field == "(document)"


def test_a_secret_declared_by_two_documents_is_reported(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "secrets:\n  db: {}\n")
    _write(tmp_path, "b.yaml", "secrets:\n  db: {}\n")

    (problem,) = check_folder(tmp_path)

    assert (Path(problem.file).name, problem.line, problem.field) == (
        "b.yaml", 2, "secrets.db",
    )  # fmt: skip


def test_environment_folders_are_checked_each_on_its_own(tmp_path: Path) -> None:
    _write(tmp_path / "dev", "a.yaml", "secrets:\n  db: {}\n")
    _write(tmp_path / "prod", "a.yaml", "secrets:\n  db: {}\n")

    assert check_folder(tmp_path) == []


def test_an_unknown_backend_is_reported_when_backends_are_known(
    tmp_path: Path,
) -> None:
    _write(tmp_path / "prod", "a.yaml", "secrets:\n  db:\n    backend: vault\n")

    (problem,) = check_folder(tmp_path, {"prod": ["aws-main"]})

    assert (problem.line, problem.field) == (3, "secrets.db.backend")


def test_a_json_document_gets_line_numbers_too(tmp_path: Path) -> None:
    _write(tmp_path, "a.json", '{"services":\n  {"app": {"admn": true}}}\n')

    (problem,) = check_folder(tmp_path)

    assert (problem.line, problem.field) == (2, "services.app")


def test_a_problem_never_repeats_the_value(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", GOOD + "    max_ttl: sk_live_pasted_value\n")

    (problem,) = check_folder(tmp_path)

    assert "sk_live_pasted_value" not in str(problem)


ROTATED = """\
secrets:
  payments/key:
    rotation:
      every: 30d
      grace: 1h
      generator: {GENERATOR}
"""
GENERATOR_FIELD = "secrets.payments/key.rotation.generator"
# Without a configuration: the defaults stand in, endpoint names go unchecked.
OFFLINE = GeneratorRegistry(RotationSettings(), settings_known=False).check


@pytest.mark.parametrize(
    ("generator", "field", "message"),
    [
        ("{type: random, length: 12}", "length",
         "must be an integer from 16 to 4096"),
        ("{type: random, alphabet: 'a'}", "alphabet",
         "must be one of alphanumeric, hex, base64url, printable"),
        ("{type: random, lenght: 48}", "",
         "key 2 is not a known field; allowed: type, length, alphabet"),
        ("{type: nosuchgen}", "type", "no generator of this type is installed"),
        ("{type: http}", "endpoint", "required field is missing"),
    ],
    ids=["short", "alphabet", "misspelt-key", "unknown-type", "no-endpoint"],
)  # fmt: skip
def test_a_generators_parameters_are_checked_at_their_line(
    tmp_path: Path, generator: str, field: str, message: str
) -> None:
    _write(tmp_path, "keys.yaml", ROTATED.replace("{GENERATOR}", generator))

    (problem,) = check_folder(tmp_path, generators=OFFLINE)

    expected = f"{GENERATOR_FIELD}.{field}" if field else GENERATOR_FIELD
    assert (problem.line, problem.field, problem.message) == (6, expected, message)


def test_an_http_endpoint_name_is_checked_once_the_settings_are_known(
    tmp_path: Path,
) -> None:
    _write(tmp_path, "keys.yaml", ROTATED.replace("{GENERATOR}", "{type: http, "
                                                  "endpoint: nosuch}"))  # fmt: skip
    configured = GeneratorRegistry(RotationSettings()).check

    offline = check_folder(tmp_path, generators=OFFLINE)
    (problem,) = check_folder(tmp_path, generators=configured)

    assert offline == []
    assert (problem.field, problem.message) == (
        f"{GENERATOR_FIELD}.endpoint",
        "must name one of rotation.endpoints",
    )


def test_a_generator_problem_never_repeats_the_value(tmp_path: Path) -> None:
    generator = "{type: random, sk_live_canary: 1, alphabet: sk_live_canary}"
    _write(tmp_path, "keys.yaml", ROTATED.replace("{GENERATOR}", generator))

    problems = check_folder(tmp_path, generators=OFFLINE)

    assert len(problems) == 2
    assert "sk_live_canary" not in " ".join(map(str, problems))


def test_a_file_named_after_an_endpoint_is_reported(tmp_path: Path) -> None:
    """`explain.yaml` could be applied but never read back through the API."""
    path = _write(tmp_path, "explain.yaml", GOOD)

    (problem,) = check_folder(tmp_path)

    assert problem.file == str(path)
    assert "cannot be named explain" in problem.message
