"""Telling other broker processes that something changed, on PostgreSQL.

A message is sent with `pg_notify` inside the transaction that made the change,
so PostgreSQL delivers it only once that change is committed, and never for a
change that was rolled back. Messages are small JSON objects naming what
changed (never a token or a secret): a revocation, a compromise, a changed
policy. On SQLite there is nobody to tell beyond this process: other processes
on the same file find changes by polling.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, func, select

CHANNEL = "tokenbroker_revocations"
# PostgreSQL refuses payloads of 8000 bytes or more.
MAX_PAYLOAD = 7900


def notify(connection: Connection, message: dict[str, Any]) -> None:
    """Queue `message` for delivery when `connection`'s transaction commits."""
    if connection.dialect.name != "postgresql":
        return
    payload = json.dumps(message, separators=(",", ":"))
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("a notification payload is over PostgreSQL's limit")
    connection.execute(select(func.pg_notify(CHANNEL, payload)))
