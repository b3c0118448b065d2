"""`tokenbroker token`: get an access token for the configured client."""

from __future__ import annotations

import argparse

from service.commands.client import Api, add_connection_options, emit, with_api


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("token", help="get an access token")
    add_connection_options(parser)
    parser.add_argument(
        "--scope", action="append", default=[], help="a scope (repeatable)"
    )
    parser.add_argument("--audience", help="a service, for service-to-service")
    parser.add_argument("--ttl", help="lifetime, seconds or a duration (15m)")
    parser.set_defaults(handler=with_api(_token))


def _token(api: Api, arguments: argparse.Namespace) -> int:
    issued = api.issue_token(
        scope=" ".join(arguments.scope),
        audience=arguments.audience or "",
        ttl=arguments.ttl or "",
    )
    emit(arguments, issued, str(issued["access_token"]))
    return 0
