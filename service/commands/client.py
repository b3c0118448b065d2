"""What every command for people shares: where the broker is, who is asking,
one HTTP client, and output as text or as JSON (`--json`).

Each connection option is a flag or a variable, the flag winning:
`--url`/`TOKENBROKER_URL`, `--env`/`TOKENBROKER_ENV`,
`--client-id`/`TOKENBROKER_CLIENT_ID`, and the client secret from
`--client-secret-file` or `TOKENBROKER_CLIENT_SECRET` (`--client-secret` works
too, but leaves the secret in the process list and the shell history). A ready
token in `TOKENBROKER_TOKEN` replaces the client credential.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from service.errors import ConfigurationError, TokenBrokerError

TIMEOUT_SECONDS = 30.0
VARIABLES = {
    "url": "TOKENBROKER_URL",
    "env": "TOKENBROKER_ENV",
    "client_id": "TOKENBROKER_CLIENT_ID",
    "client_secret": "TOKENBROKER_CLIENT_SECRET",
    "token": "TOKENBROKER_TOKEN",
}


# For `tokenbroker --help`: every variable the commands for people read.
VARIABLES_HELP = """\
variables (the flag beside a variable wins over it):
  TOKENBROKER_URL            the broker's URL (--url)
  TOKENBROKER_ENV            the environment (--env)
  TOKENBROKER_CLIENT_ID      the service to act as (--client-id)
  TOKENBROKER_CLIENT_SECRET  its client secret (--client-secret-file keeps it
                             out of the environment)
  TOKENBROKER_TOKEN          a ready access token, used instead of the client
                             credential

exit status: 0 done, 1 the broker refused or cannot be reached, 2 a usage or
configuration problem; `policy explain` and `run` say what theirs are."""


class CommandFailed(TokenBrokerError):
    """The broker refused or failed a command's request; exit status 1."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = status


def add_connection_options(
    parser: argparse.ArgumentParser, *, json_output: bool = True
) -> None:
    """The flags that say where the broker is and who asks, and `--json` for
    the commands that print an answer."""
    group = parser.add_argument_group(
        "connection (flags or TOKENBROKER_* variables)",
        "a ready token in TOKENBROKER_TOKEN replaces the client credential",
    )
    group.add_argument("--url", help="broker URL [TOKENBROKER_URL]")
    group.add_argument("--env", help="environment [TOKENBROKER_ENV]")
    group.add_argument("--client-id", help="client id [TOKENBROKER_CLIENT_ID]")
    group.add_argument(
        "--client-secret-file", type=Path, help="file holding the client secret"
    )
    group.add_argument(
        "--client-secret", help="client secret [TOKENBROKER_CLIENT_SECRET]"
    )
    if json_output:
        add_json_option(parser)


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")


def option(arguments: argparse.Namespace, name: str) -> str | None:
    """A connection option from its flag, else from its variable."""
    given = getattr(arguments, name, None)
    if given:
        return str(given)
    return os.environ.get(VARIABLES[name]) or None


class Api:
    """The broker's API for one environment, as the person's client sees it."""

    def __init__(self, arguments: argparse.Namespace) -> None:
        url = option(arguments, "url")
        env = option(arguments, "env")
        if url is None or env is None:
            raise ConfigurationError(
                "say where the broker is: --url and --env, or TOKENBROKER_URL and "
                "TOKENBROKER_ENV"
            )
        self.env = env
        self.base = f"{url.rstrip('/')}/v1/{env}"
        self._arguments = arguments
        self._token = option(arguments, "token")
        self._http = httpx.Client(timeout=TIMEOUT_SECONDS)

    def close(self) -> None:
        self._http.close()

    def issue_token(self, **form: str) -> dict[str, Any]:
        """A token response for the configured client credential."""
        client_id = option(self._arguments, "client_id")
        secret = self._client_secret()
        if client_id is None or secret is None:
            raise ConfigurationError(
                "give a client credential: --client-id and --client-secret-file, "
                "or TOKENBROKER_CLIENT_ID and TOKENBROKER_CLIENT_SECRET"
            )
        fields = {key: value for key, value in form.items() if value}
        answer: dict[str, Any] = self.call(
            "POST",
            "token",
            auth=(client_id, secret),
            data={"grant_type": "client_credentials", **fields},
            bearer=False,
        ).json()
        return answer

    def call(
        self, method: str, path: str, *, bearer: bool = True, **options: Any
    ) -> httpx.Response:
        """One request; raises CommandFailed with the broker's description."""
        if bearer:
            headers = options.pop("headers", {})
            options["headers"] = {"Authorization": f"Bearer {self.bearer()}",
                                  **headers}  # fmt: skip
        try:
            response = self._http.request(method, f"{self.base}/{path}", **options)
        except httpx.HTTPError as error:
            raise CommandFailed(
                f"cannot reach the broker at {self.base} ({type(error).__name__})"
            ) from None
        if response.is_success:
            return response
        raise CommandFailed(_describe(response), response.status_code)

    def has_token(self) -> bool:
        return self._token is not None

    def use_token(self, token: str) -> None:
        """Call with this token from now on."""
        self._token = token

    def bearer(self) -> str:
        if self._token is None:
            self._token = str(self.issue_token()["access_token"])
        return self._token

    def _client_secret(self) -> str | None:
        path: Path | None = getattr(self._arguments, "client_secret_file", None)
        if path is not None:
            try:
                # One trailing newline is the file's, not the secret's (C17).
                return path.read_text(encoding="utf-8").removesuffix("\n")
            except OSError as error:
                raise ConfigurationError(
                    f"--client-secret-file: cannot read {path} ({error.strerror})"
                ) from None
        return option(self._arguments, "client_secret")


def with_api(
    handler: Callable[[Api, argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """A command handler that gets an Api, closed when the handler returns."""

    def run(arguments: argparse.Namespace) -> int:
        api = Api(arguments)
        try:
            return handler(api, arguments)
        finally:
            api.close()

    return run


def emit(arguments: argparse.Namespace, data: Any, text: str) -> None:
    """Print `data` as JSON with `--json`, else `text` for people."""
    if getattr(arguments, "json", False):
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    elif text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _describe(response: httpx.Response) -> str:
    try:
        body = response.json()
        detail = f"{body['error']}: {body['error_description']}"
    except (ValueError, KeyError, TypeError):
        detail = response.reason_phrase
    return f"the broker answered {response.status_code} ({detail})"
