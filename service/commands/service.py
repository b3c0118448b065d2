"""`tokenbroker service credentials|revoke|enable`: a service's credential and
tokens.

`revoke` calls `POST services/{service}/revoke` (every token of the service
stops working; `--disable` also refuses new ones) and `enable` lets a disabled
service get tokens again. A broker older than revocation answers 404, and the
command says so.
"""

from __future__ import annotations

import argparse

from service.commands.client import (
    Api,
    CommandFailed,
    add_connection_options,
    emit,
    with_api,
)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("service", help="credentials and revocation")
    actions = group.add_subparsers(required=True, metavar="ACTION")

    credentials = actions.add_parser(
        "credentials", help="create a client secret (shown once)"
    )
    credentials.add_argument("service")
    credentials.set_defaults(handler=with_api(_credentials))

    revoke = actions.add_parser("revoke", help="revoke every token of a service")
    revoke.add_argument("service")
    revoke.add_argument("--disable", action="store_true", help="also refuse new tokens")
    revoke.add_argument("--reason", help="why, for the audit log")
    revoke.set_defaults(handler=with_api(_revoke))

    enable = actions.add_parser("enable", help="let a disabled service get tokens")
    enable.add_argument("service")
    enable.add_argument("--reason", help="why, for the audit log")
    enable.set_defaults(handler=with_api(_enable))
    for parser in (credentials, revoke, enable):
        add_connection_options(parser)


def _credentials(api: Api, arguments: argparse.Namespace) -> int:
    answer = api.call("POST", f"services/{arguments.service}/credentials").json()
    text = (
        f"client_id:     {answer['client_id']}\n"
        f"client_secret: {answer['client_secret']}\n"
        f"credential_id: {answer['credential_id']} (the secret is shown once)"
    )
    emit(arguments, answer, text)
    return 0


def _revoke(api: Api, arguments: argparse.Namespace) -> int:
    params = {"disable": "true"} if arguments.disable else {}
    if arguments.reason:
        params["reason"] = arguments.reason
    try:
        response = api.call(
            "POST", f"services/{arguments.service}/revoke", params=params
        )
    except CommandFailed as failed:
        if failed.http_status in (404, 405):
            raise CommandFailed(
                f"this broker does not offer service revocation yet ({failed.message})"
            ) from None
        raise
    answer = response.json() if response.content else {}
    disabled = " and service disabled" if answer.get("disabled") else ""
    emit(arguments, answer, f"{arguments.service}: tokens revoked{disabled}")
    return 0


def _enable(api: Api, arguments: argparse.Namespace) -> int:
    params = {"reason": arguments.reason} if arguments.reason else {}
    answer = api.call(
        "POST", f"services/{arguments.service}/enable", params=params
    ).json()
    emit(arguments, answer, f"{arguments.service}: enabled")
    return 0
