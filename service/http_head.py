"""The server's HTTP/1.1 protocol: uvicorn's httptools one, with a bounded head.

httptools (llhttp) buffers a request line and headers of any size, and uvicorn
has no setting to bound them; only its slower h11 protocol has one
(`h11_max_incomplete_event_size`, see https://github.com/Kludex/uvicorn/issues/157).
This protocol counts the bytes of each request head as they arrive, so a
connection holds at most MAX_HEAD_BYTES plus one read from its socket, and
measures a head that came in one read when the parser has it whole; either way
an oversized head is answered 431 and never reaches the application. The cost
is an addition per read while a head is coming in and a sum per request; bodies
are not counted here (service.http.BodyLimit bounds them).
"""

from __future__ import annotations

import json
from typing import Any, Final

import structlog
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

log = structlog.get_logger(__name__)

# Room for the longest token (service.tokens.MAX_TOKEN_LENGTH) and more; the
# same order as nginx's 4 x 8 KiB and twice h11's default.
MAX_HEAD_BYTES: Final = 32 * 1024
# After a 431 the client may still be sending its head; reading and dropping it
# for a moment lets the answer arrive instead of being lost to a reset.
LINGER_SECONDS: Final = 2.0
_REFUSAL: Final = json.dumps(
    {
        "error": "request_header_fields_too_large",
        "error_description": "the request line and headers are over the limit "
        f"of {MAX_HEAD_BYTES} bytes",
    }
).encode()


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request head over MAX_HEAD_BYTES."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Bytes of the head being received; None while a body is.
        self._head_bytes: int | None = 0
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._head_bytes is not None:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._head_bytes is not None and self._head_bytes > MAX_HEAD_BYTES:
            self._refused = True
        if self._refused and not self.transport.is_closing():
            self._refuse()

    def on_headers_complete(self) -> None:
        # A head that arrived in one read is measured here, whole.
        if self._refused:
            return
        self._head_bytes = None
        if _head_size(self.url, self.headers) > MAX_HEAD_BYTES:
            self._refused = True
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        super().on_message_complete()
        self._head_bytes = 0

    def _refuse(self) -> None:
        self.headers = []
        log.info("request_head_refused", limit=MAX_HEAD_BYTES)
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[431],
                    b"content-type: application/json\r\n",
                    b"content-length: %d\r\n" % len(_REFUSAL),
                    b"cache-control: no-store\r\n",
                    b"connection: close\r\n\r\n",
                    _REFUSAL,
                ]
            )
        )
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def _head_size(target: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    """The request target and header fields, as sent but for whitespace."""
    return len(target) + sum(len(name) + len(value) + 4 for name, value in headers)
