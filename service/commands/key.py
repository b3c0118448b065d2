"""`tokenbroker key list|rotate|revoke`: an environment's signing keys.

`rotate` publishes a new key that signs once its overlap has passed (the
broker's `signing_keys.overlap_seconds`, or `--overlap SECONDS`); `revoke KID`
is the emergency: the key leaves the JWKS and every token it signed is refused.
"""

from __future__ import annotations

import argparse

from service.commands.client import Api, add_connection_options, emit, with_api


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("key", help="signing keys: list, rotate, revoke")
    actions = group.add_subparsers(required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="every key and its state")
    listing.set_defaults(handler=with_api(_list))

    rotate = actions.add_parser("rotate", help="publish a new key now")
    rotate.add_argument(
        "--overlap", type=float, help="seconds before the new key signs"
    )
    rotate.set_defaults(handler=with_api(_rotate))

    revoke = actions.add_parser("revoke", help="withdraw a key and its tokens")
    revoke.add_argument("kid")
    revoke.add_argument("--reason", help="why, for the audit log")
    revoke.set_defaults(handler=with_api(_revoke))
    for parser in (listing, rotate, revoke):
        add_connection_options(parser)


def _list(api: Api, arguments: argparse.Namespace) -> int:
    answer = api.call("GET", "keys").json()
    lines = [
        f"{key['kid']}  {key['state']:<9}  signs from {key['activates_at']}  "
        f"until {key['not_after']}"
        for key in answer["keys"]
    ]
    emit(arguments, answer, "\n".join(lines))
    return 0


def _rotate(api: Api, arguments: argparse.Namespace) -> int:
    params = {} if arguments.overlap is None else {"overlap_seconds": arguments.overlap}
    answer = api.call("POST", "keys/rotate", params=params).json()
    emit(arguments, answer, f"{answer['kid']}: published, signs from "
                            f"{answer['activates_at']}")  # fmt: skip
    return 0


def _revoke(api: Api, arguments: argparse.Namespace) -> int:
    params = {"reason": arguments.reason} if arguments.reason else {}
    answer = api.call("POST", f"keys/{arguments.kid}/revoke", params=params).json()
    replaced = (
        f"; {answer['replacement']} signs now" if answer.get("replacement") else ""
    )
    emit(arguments, answer, f"{arguments.kid}: revoked{replaced}")
    return 0
