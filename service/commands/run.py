"""`tokenbroker run --secret VAR=NAME ... -- CMD [ARG...]`.

Reads each named secret with a token scoped to exactly those secrets, then
replaces this process with CMD, the secrets in its environment. Nothing is
written to disk and nothing is printed; CMD's exit status is the command's.

CMD gets the secrets it was given and not the credential that fetched them:
the broker credential variables (`CREDENTIAL_VARIABLES`) are taken out of its
environment, everything else is passed on.

As in a shell, a CMD that cannot be found exits 127 and one that cannot be
run 126, each with one line on standard error. A value no environment can hold
(not text, or with a NUL byte) is refused naming its variable, never the value.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping

from service.commands.client import (
    VARIABLES,
    Api,
    add_connection_options,
    with_api,
)
from service.commands.secret import read_value
from service.errors import ConfigurationError, InvalidRequest

# A shell's exit statuses for a command it cannot find, and one it cannot run.
NOT_FOUND, CANNOT_RUN = 127, 126
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# What would let CMD act as the caller towards the broker, or reach its store:
# the client secret, a ready token, and the store URL (it may hold a password).
CREDENTIAL_VARIABLES = frozenset(
    {VARIABLES["client_secret"], VARIABLES["token"], "TOKENBROKER_STORE"}
)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "run",
        help="run a command with secrets in its environment",
        description="Read each --secret with a token scoped to exactly those "
        "secrets, then replace this process with CMD, each secret in its "
        "variable. CMD inherits this environment without the broker "
        f"credentials ({', '.join(sorted(CREDENTIAL_VARIABLES))}). Nothing is "
        "printed, so there is no --json; the exit status is CMD's.",
    )
    parser.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="VAR=NAME",
        help="put secret NAME in variable VAR (repeatable)",
    )
    add_connection_options(parser, json_output=False)
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
    environment = child_environment(os.environ)
    for variable, name in wanted:
        value, _ = read_value(api, name)
        environment[variable] = _text(value, name, variable)
    api.close()
    try:
        os.execvpe(command[0], command, environment)  # noqa: S606 (the person's command)
    except OSError as error:
        found = not isinstance(error, FileNotFoundError)
        reason = error.strerror if found and error.strerror else "command not found"
        sys.stderr.write(f"tokenbroker: run: {command[0]}: {reason.lower()}\n")
        return CANNOT_RUN if found else NOT_FOUND


def _text(value: bytes, name: str, variable: str) -> str:
    """A value as an environment holds it. Raises InvalidRequest."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(
            f"secret {name!r} is not text; it cannot go into {variable}"
        ) from None
    if "\x00" in text:
        raise InvalidRequest(
            f"secret {name!r} holds a NUL byte, which no environment variable "
            f"can; it cannot go into {variable}"
        )
    return text


def child_environment(inherited: Mapping[str, str]) -> dict[str, str]:
    """`inherited` without the broker credential variables, in any case."""
    return {
        key: value
        for key, value in inherited.items()
        if key.upper() not in CREDENTIAL_VARIABLES
    }


def _mapping(item: str) -> tuple[str, str]:
    variable, separator, name = item.partition("=")
    if not separator or not _VARIABLE.fullmatch(variable) or not name:
        raise ConfigurationError(
            "--secret: expected VAR=NAME, such as DB_PASSWORD=app/db"
        )
    return variable, name
