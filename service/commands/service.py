"""`tokenbroker service credentials|revoke|enable|compromise`: a service's
credential and tokens.

`revoke` calls `POST services/{service}/revoke` (every token of the service
stops working; `--disable` also refuses new ones) and `enable` lets a disabled
service get tokens again. A broker older than revocation answers 404, and the
command says so. `compromise` is break-glass (`POST
services/{service}/compromise`): disabled, tokens and credentials revoked, and
what it read within `--window` printed (and with `--rotate`, rotated).
"""

from __future__ import annotations

import argparse
from typing import Any

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

    compromise = actions.add_parser(
        "compromise",
        help="break-glass: shut a service out, list what it read",
        description="Disable the service, revoke its tokens and credentials, "
        "and print every secret and version it read within --window; with "
        "--rotate, rotate each of them at once, with no grace.",
    )
    compromise.add_argument("service")
    compromise.add_argument("--reason", required=True, help="why, for the record")
    compromise.add_argument(
        "--window", default="24h", help="how far back to look (default: 24h)"
    )
    compromise.add_argument(
        "--rotate", action="store_true", help="rotate every secret it read"
    )
    compromise.set_defaults(handler=with_api(_compromise))
    for parser in (credentials, revoke, enable, compromise):
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


def _compromise(api: Api, arguments: argparse.Namespace) -> int:
    body = {"reason": arguments.reason, "window": arguments.window,
            "rotate": arguments.rotate}  # fmt: skip
    answer = api.call(
        "POST", f"services/{arguments.service}/compromise", json=body
    ).json()
    emit(arguments, answer, _compromise_text(arguments.service, answer))
    rotations = answer.get("rotations", [])
    return 0 if all(r["status"] == "rotated" for r in rotations) else 1


def _compromise_text(service: str, report: dict[str, Any]) -> str:
    credentials = len(report["credentials_revoked"])
    lines = [
        f"{service}: disabled, every token revoked, {credentials} credential(s) "
        f"revoked",
        f"  read since {report['since']}:",
    ]
    lines.extend(
        f"    {r['secret']} version {r['version']}: {r['reads']} reads, "
        f"last {r['last_read_at']}"
        for r in report["reads"]
    )
    for rotation in report.get("rotations", []):
        outcome = rotation.get("version") or rotation.get("error_description")
        lines.append(f"  rotated {rotation['secret']}: {rotation['status']} {outcome}")
    lines.append(f"  report: compromises/{report['id']}")
    return "\n".join(lines)
