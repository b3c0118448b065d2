"""The media type of a request body, read the one way every route reads it.

A body's Content-Type names its base type and, optionally, its charset. The
broker reads text bodies as UTF-8 only, so a charset other than UTF-8 (or its
ASCII subset) is refused with the rest: a body read in the wrong charset could
mean something else to the broker than to the proxy or client that sent it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from service.errors import UnsupportedMediaType

UTF8_NAMES: Final = frozenset({"utf-8", "utf8", "us-ascii"})


def body_media_type(
    header: str | None, accepted: Collection[str], *, default: str, refusal: str
) -> str:
    """The base media type `header` names, lower case; `default` without one.

    Raises UnsupportedMediaType with `refusal` for a type not in `accepted`
    or a charset other than UTF-8; `refusal` names what is accepted, never
    what was sent.
    """
    if header is None:
        return default
    base, *parameters = header.split(";")
    media_type = base.strip().lower()
    charsets = {
        value.strip().strip('"').lower()
        for name, _, value in (part.partition("=") for part in parameters)
        if name.strip().lower() == "charset"
    }
    if media_type not in accepted or not charsets <= UTF8_NAMES:
        raise UnsupportedMediaType(refusal)
    return media_type
