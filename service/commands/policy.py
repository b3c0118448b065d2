"""`tokenbroker policy apply|check|explain`.

`check` works offline, on files only: it is meant for the CI of a policy
repository, and needs no broker and no credential. It checks generators with
the broker's own registry (built-in types, and plugins installed beside it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from policies.check import SUFFIXES, check_files, check_folder
from service.commands.client import (
    Api,
    CommandFailed,
    add_connection_options,
    add_json_option,
    emit,
    with_api,
)
from service.config import Settings, load_settings
from service.errors import ConfigurationError
from service.rotation.generators import GeneratorRegistry
from service.rotation.settings import RotationSettings

# `policy explain`'s exit statuses; 2 is also argparse's for a usage error.
ALLOWED, DENIED, NO_ANSWER = 0, 1, 2


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("policy", help="apply, check and explain policy")
    actions = group.add_subparsers(required=True, metavar="ACTION")

    apply = actions.add_parser("apply", help="store a policy document")
    apply.add_argument("file", type=Path)
    apply.add_argument("--name", help="document name (default: the file's stem)")
    apply.add_argument("--dry-run", action="store_true", help="change nothing")
    add_connection_options(apply)
    apply.set_defaults(handler=with_api(_apply))

    check = actions.add_parser("check", help="validate policy files offline")
    check.add_argument("path", type=Path, help="a folder (or one file)")
    check.add_argument(
        "--config", type=Path, help="check backend names against this configuration"
    )
    check.add_argument("--env", help="the environment of a flat folder or a file")
    add_json_option(check)
    check.set_defaults(handler=_check)

    explain = actions.add_parser(
        "explain",
        help="why a scope is allowed or denied",
        description="Ask the broker whether SERVICE may hold SCOPE, and which "
        "rule of which document decided. Exit status: 0 allowed, 1 denied, 2 no "
        "answer (a usage or configuration problem, or the broker refused or "
        "could not be reached), so that a script never reads a failure as a "
        "verdict.",
    )
    explain.add_argument("--service", required=True)
    explain.add_argument("--scope", required=True)
    add_connection_options(explain)
    explain.set_defaults(handler=with_api(_explain))


def _apply(api: Api, arguments: argparse.Namespace) -> int:
    path: Path = arguments.file
    media_type = SUFFIXES.get(path.suffix, "application/yaml")
    answer = api.call(
        "PUT",
        f"policies/{arguments.name or path.stem}",
        content=path.read_bytes(),
        headers={"Content-Type": media_type},
        params={"dry_run": "true"} if arguments.dry_run else {},
    ).json()
    emit(arguments, answer, _describe_changes(answer))
    return 0


def _check(arguments: argparse.Namespace) -> int:
    path: Path = arguments.path
    settings = None if arguments.config is None else load_settings(arguments.config)
    backends = _backends(arguments, settings)
    # Without a configuration the defaults stand in, and endpoint names (which
    # only the configuration holds) go unchecked.
    generators = GeneratorRegistry(
        settings.rotation if settings is not None else RotationSettings(),
        settings_known=settings is not None,
    )
    if path.is_file():
        problems = check_files([path], backends.get(""), generators.check)
    elif path.is_dir():
        problems = check_folder(path, backends, generators.check)
    else:
        raise ConfigurationError(f"{path}: no such file or folder")
    emit(
        arguments,
        {"problems": [_problem_json(problem) for problem in problems]},
        "\n".join(map(str, problems)) or f"{path}: no problems",
    )
    return 1 if problems else 0


def _explain(api: Api, arguments: argparse.Namespace) -> int:
    try:
        answer = api.call(
            "GET",
            "policies/explain",
            params={"service": arguments.service, "scope": arguments.scope},
        ).json()
    except CommandFailed as failed:
        sys.stderr.write(f"tokenbroker: {failed.message}\n")
        return NO_ANSWER
    verdict = "allowed" if answer["allowed"] else "denied"
    decided = (
        f"{answer['document']} (revision {answer['document_revision']}): "
        f"{answer['rule']}"
        if answer.get("rule")
        else "no rule"
    )
    text = f"{verdict}: {answer['reason']}\n  decided by {decided}"
    emit(arguments, answer, text)
    return ALLOWED if answer["allowed"] else DENIED


def _problem_json(problem: Any) -> dict[str, Any]:
    return {"file": problem.file, "line": problem.line, "field": problem.field,
            "message": problem.message}  # fmt: skip


def _backends(
    arguments: argparse.Namespace, settings: Settings | None
) -> dict[str, list[str]]:
    """Backend names per environment folder, from `--config` when given."""
    if settings is None:
        return {}
    found = {
        env: list(config.backends) for env, config in settings.environments.items()
    }
    if arguments.env is not None:
        if arguments.env not in found:
            raise ConfigurationError(
                f"--env: {arguments.config} has no environment named {arguments.env!r}"
            )
        found[""] = found[arguments.env]
    return found


def _describe_changes(answer: dict[str, Any]) -> str:
    head = (
        f"{answer['name']}: would become revision {answer['revision']}"
        if answer["dry_run"]
        else f"{answer['name']}: revision {answer['revision']} applied"
    )
    lines = [head]
    for service, change in sorted(answer["changes"].items()):
        lines += [f"  {service}: + {grant}" for grant in change["added"]]
        lines += [f"  {service}: - {grant}" for grant in change["removed"]]
    if not answer["changes"]:
        lines.append("  no grant changes")
    return "\n".join(lines)
