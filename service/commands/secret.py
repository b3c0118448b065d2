"""`tokenbroker secret get|put|list|rotate|refresh|compromise`.

`get` prints the value (text with a newline; bytes as they are), or the whole
answer with `--json`. `put` reads the value from `--from-file` or standard
input, never from a flag: a flag would leave it in the shell history. It stores
what it reads byte for byte, a final newline included (a value may need one),
unless `--strip-newline` asks it to drop one, as `--client-secret-file` does.
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

from service.commands.client import (
    Api,
    CommandFailed,
    add_connection_options,
    emit,
    with_api,
)

PAGE_SIZE = 500


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("secret", help="read, write and list secrets")
    actions = group.add_subparsers(required=True, metavar="ACTION")

    get = actions.add_parser("get", help="print a secret's value")
    get.add_argument("name")
    which = get.add_mutually_exclusive_group()
    which.add_argument("--version")
    which.add_argument("--stage", choices=("current", "previous", "pending"))
    get.set_defaults(handler=with_api(_get))

    put = actions.add_parser(
        "put",
        help="store a new version (value on stdin)",
        description="Store what standard input (or --from-file) holds as the "
        "new current version, byte for byte: a final newline is part of the "
        "value, so `echo VALUE |` stores VALUE and a newline where `printf %s "
        "VALUE |` does not. --strip-newline drops one final newline.",
    )
    put.add_argument("name")
    put.add_argument("--from-file", type=Path, help="read the value from a file")
    put.add_argument(
        "--strip-newline",
        action="store_true",
        help="drop one final newline (\\n or \\r\\n) from the value",
    )
    put.add_argument("--if-match", metavar="VERSION", help="compare-and-set")
    put.set_defaults(handler=with_api(_put))

    listing = actions.add_parser("list", help="list the secrets you may read")
    listing.add_argument("--prefix", default="")
    listing.set_defaults(handler=with_api(_list))

    rotate = actions.add_parser("rotate", help="rotate a secret now")
    rotate.add_argument("name")
    rotate.set_defaults(handler=with_api(_rotate))

    refresh = actions.add_parser(
        "refresh",
        help="have every broker process read a secret afresh",
        description="Every broker process drops its cached versions of the "
        "secret now, so the next read fetches it from its store: after the "
        "secret was changed in its store outside the broker, say. Prints the "
        "current version the store has. Needs secrets:rotate on the secret.",
    )
    refresh.add_argument("name")
    refresh.set_defaults(handler=with_api(_refresh))

    compromise = actions.add_parser(
        "compromise",
        help="emergency response to a leaked version",
        description="Replace the version at once with no grace (or, for a "
        "version that is not current, disable it), revoke every token that read "
        "it, and print who read it. Exit status 1 unless the version is "
        "disabled now; the report id reads it again (GET compromises/ID).",
    )
    compromise.add_argument("name")
    compromise.add_argument("--reason", required=True, help="why, for the record")
    compromise.add_argument(
        "--version", default="current", help="the leaked version (default: current)"
    )
    compromise.set_defaults(handler=with_api(_compromise))

    for parser in (get, put, listing, rotate, refresh, compromise):
        add_connection_options(parser)


def read_value(api: Api, name: str, **params: str) -> tuple[bytes, dict[str, Any]]:
    """A secret's value as bytes, and the broker's whole answer."""
    body: dict[str, Any] = api.call("GET", _path(name), params=params).json()
    if body.get("encoding") == "base64":
        return base64.b64decode(body["value"]), body
    return str(body["value"]).encode("utf-8"), body


def _get(api: Api, arguments: argparse.Namespace) -> int:
    params = {k: v for k in ("version", "stage") if (v := getattr(arguments, k))}
    value, body = read_value(api, arguments.name, **params)
    if arguments.json:
        emit(arguments, body, "")
    elif body.get("encoding") == "base64":
        sys.stdout.buffer.write(value)
        sys.stdout.buffer.flush()
    else:
        sys.stdout.write(value.decode("utf-8") + "\n")
    return 0


def _put(api: Api, arguments: argparse.Namespace) -> int:
    path: Path | None = arguments.from_file
    raw = path.read_bytes() if path is not None else sys.stdin.buffer.read()
    if arguments.strip_newline and raw.endswith(b"\n"):
        raw = raw.removesuffix(b"\r\n") if raw.endswith(b"\r\n") else raw[:-1]
    try:
        body = {"value": raw.decode("utf-8"), "encoding": "text"}
    except UnicodeDecodeError:
        body = {"value": base64.b64encode(raw).decode("ascii"), "encoding": "base64"}
    headers = {"If-Match": f'"{arguments.if_match}"'} if arguments.if_match else {}
    answer = api.call("PUT", _path(arguments.name), json=body, headers=headers).json()
    emit(arguments, answer, f"{arguments.name}: version {answer['version']}")
    return 0


def _list(api: Api, arguments: argparse.Namespace) -> int:
    found: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        params = {"prefix": arguments.prefix, "page_size": str(PAGE_SIZE)}
        if token is not None:
            params["page_token"] = token
        page = api.call("GET", "secrets", params=params).json()
        found.extend(page["secrets"])
        token = page.get("next_page_token")
        if not token:
            break
    emit(arguments, {"secrets": found}, "\n".join(s["name"] for s in found))
    return 0


def _rotate(api: Api, arguments: argparse.Namespace) -> int:
    answer = api.call("POST", f"{_path(arguments.name)}/rotate").json()
    text = f"{arguments.name}: rotation {answer['id']} {answer['state']}"
    emit(arguments, answer, text)
    return 0


def _refresh(api: Api, arguments: argparse.Namespace) -> int:
    answer = api.call("POST", f"{_path(arguments.name)}/refresh").json()
    text = f"{arguments.name}: refreshed; current version {answer['version']}"
    emit(arguments, answer, text)
    return 0


def _compromise(api: Api, arguments: argparse.Namespace) -> int:
    body = {"reason": arguments.reason, "version": arguments.version}
    try:
        answer = api.call(
            "POST", f"{_path(arguments.name)}/compromise", json=body
        ).json()
    except CommandFailed as failed:
        if failed.http_status == 405:
            raise CommandFailed(
                "this broker does not offer the compromise response yet "
                f"({failed.message})"
            ) from None
        raise
    emit(arguments, answer, _compromise_text(arguments.name, answer))
    return 0 if answer["state"] == "contained" else 1


def _compromise_text(name: str, report: dict[str, Any]) -> str:
    replaced = f"; new version {report['new_version']}" if report["new_version"] else ""
    lines = [f"{name}: version {report['version']} {report['state']}{replaced}"]
    if report.get("error"):
        lines.append(f"  error: {report['error']}")
    lines.extend(
        f"  read by {s['service']}: {s['reads']} reads, last {s['last_read_at']}"
        for s in report["services"]
    )
    revoked = len(report["tokens_revoked"])
    watermarks = [s["service"] for s in report["services_revoked"]]
    lines.append(f"  tokens revoked: {revoked}")
    if watermarks:
        lines.append(f"  every token revoked of: {', '.join(watermarks)}")
    lines.append(f"  report: compromises/{report['id']}")
    return "\n".join(lines)


def _path(name: str) -> str:
    return f"secrets/{quote(name, safe='/')}"
