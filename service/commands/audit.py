"""`tokenbroker audit verify|export`.

With `--config` both read the store directly: that is the proof that counts,
since it trusts nothing but the records themselves. Without it they ask a
running broker over HTTP (`admin` needed). `export` writes JSON lines, one
record each, for a SIEM.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from service.audit_chain import records, verify
from service.commands.client import Api, add_connection_options, emit, option
from service.config import load_settings
from service.errors import ConfigurationError
from service.store.database import open_store


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("audit", help="verify or export the audit chain")
    actions = group.add_subparsers(required=True, metavar="ACTION")

    check = actions.add_parser("verify", help="prove the chain intact")
    check.set_defaults(handler=_verify)
    export = actions.add_parser("export", help="print records as JSON lines")
    export.add_argument("--after", type=int, default=0, help="after this record")
    export.set_defaults(handler=_export)
    for parser in (check, export):
        parser.add_argument(
            "--config", type=Path, help="read the store of this configuration"
        )
        add_connection_options(parser)


def _verify(arguments: argparse.Namespace) -> int:
    if arguments.config is not None:
        with _store(arguments) as engine:
            answer = verify(engine, str(option(arguments, "env"))).as_json()
    else:
        api = Api(arguments)
        try:
            answer = api.call("GET", "audit/verify").json()
        finally:
            api.close()
    emit(arguments, answer, _describe(answer))
    return 0 if answer["intact"] else 1


def _export(arguments: argparse.Namespace) -> int:
    if arguments.config is not None:
        with _store(arguments) as engine, engine.connect() as connection:
            env = str(option(arguments, "env"))
            for record in records(connection, env, after=arguments.after):
                sys.stdout.write(json.dumps(record.as_json(), ensure_ascii=False))
                sys.stdout.write("\n")
        return 0
    api = Api(arguments)
    try:
        response = api.call("GET", "audit", params={"after": str(arguments.after)})
        sys.stdout.write(response.text)
    finally:
        api.close()
    return 0


@contextmanager
def _store(arguments: argparse.Namespace) -> Iterator[Engine]:
    settings = load_settings(arguments.config)
    if option(arguments, "env") not in settings.environments:
        raise ConfigurationError(
            f"--env: name one of the environments of {arguments.config}"
        )
    engine = open_store(settings.store)
    try:
        yield engine
    finally:
        engine.dispose()


def _describe(answer: dict[str, Any]) -> str:
    if answer["intact"]:
        return (
            f"{answer['env']}: the audit chain is intact: {answer['records']} "
            f"records, head {answer['head']['hash']}"
        )
    return (
        f"{answer['env']}: the audit chain is BROKEN at record "
        f"{answer['broken_seq']}: {answer['problem']}"
    )
