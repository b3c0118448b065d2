"""`tokenbroker run --secret VAR=NAME ... -- CMD [ARG...]`.

Reads each named secret with a token scoped to exactly those secrets, then
replaces this process with CMD, the secrets in its environment. Nothing is
written to disk and nothing is printed; CMD's exit status is the command's.
"""

from __future__ import annotations

import argparse
import os
import re

from service.commands.client import Api, add_connection_options, with_api
from service.commands.secret import read_value
from service.errors import ConfigurationError, InvalidRequest

_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "run", help="run a command with secrets in its environment"
    )
    parser.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="VAR=NAME",
        help="put secret NAME in variable VAR (repeatable)",
    )
    add_connection_options(parser)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARG...]")
    parser.set_defaults(handler=with_api(_run))


def _run(api: Api, arguments: argparse.Namespace) -> int:
    command = list(arguments.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise ConfigurationError("run: give the command after --")
    wanted = [_mapping(item) for item in arguments.secret]

    scopes = " ".join(f"secrets:read:{name}" for _, name in wanted)
    if scopes and not api.has_token():
        api.use_token(str(api.issue_token(scope=scopes)["access_token"]))
    environment = dict(os.environ)
    for variable, name in wanted:
        value, _ = read_value(api, name)
        try:
            environment[variable] = value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest(
                f"secret {name!r} is not text; it cannot go into {variable}"
            ) from None
    api.close()
    os.execvpe(command[0], command, environment)  # noqa: S606 (the person's command)


def _mapping(item: str) -> tuple[str, str]:
    variable, separator, name = item.partition("=")
    if not separator or not _VARIABLE.fullmatch(variable) or not name:
        raise ConfigurationError(
            "--secret: expected VAR=NAME, such as DB_PASSWORD=app/db"
        )
    return variable, name
