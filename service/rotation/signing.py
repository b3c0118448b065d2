"""HMAC signatures on the broker's outgoing requests (generators and webhooks).

The header is `X-Tokenbroker-Signature: t=UNIX_SECONDS,v1=HEX`, where HEX is
HMAC-SHA256 under the shared key of `"{t}." + body`. The timestamp lets a
receiver refuse replays older than it tolerates.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
from pathlib import Path

from service.errors import ConfigurationError
from service.sensitive import Sensitive

SIGNATURE_HEADER = "X-Tokenbroker-Signature"


def signature(key: Sensitive, timestamp: int, body: bytes) -> str:
    """The header value that signs `body` at `timestamp`."""
    mac = hmac.new(key.reveal(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(key: Sensitive, header: str, body: bytes) -> bool:
    """Whether `header` signs `body` under `key` (for receivers and tests)."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    if not fields.get("t", "").isdigit() or "v1" not in fields:
        return False
    expected = signature(key, int(fields["t"]), body)
    return hmac.compare_digest(expected, header)


def load_key(path: Path, setting: str) -> Sensitive:
    """The key in `path`, one trailing newline stripped.

    Raises ConfigurationError naming `setting`, never the key.
    """
    try:
        data = path.read_bytes()
    except OSError:
        raise ConfigurationError(f"{setting}: cannot read {path}") from None
    data = data.removesuffix(b"\n").removesuffix(b"\r")
    if len(data) < 16:
        raise ConfigurationError(f"{setting}: the key must be at least 16 bytes")
    return Sensitive(data)


def tls_verify(ca_file: Path | None) -> ssl.SSLContext | bool:
    """What httpx should verify servers with: a private CA, or the system's."""
    if ca_file is None:
        return True
    return ssl.create_default_context(cafile=str(ca_file))
