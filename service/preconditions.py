"""The If-Match precondition of a secret write (RFC 9110 section 13.1.1).

`If-Match: *` holds when the secret has a current version at all; a list of
tags holds when one of them is the current version, compared exactly as text
(versions are numbers on some stores, UUIDs or hex ids on others, so no tag is
ever read as a number). A tag is a quoted version, `"3"`, or, as the contract
writes it, a bare one, `3`; a bare tag must be an RFC 9110 token, so
`If-Match: -1` names a version no store has (412) while text that is no tag
at all, such as a fullwidth digit or a weak tag, is 400: it cannot be read,
and reading it some lax way could match a version the caller did not mean.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from service.errors import InvalidRequest

# A quoted tag holds etagc characters (RFC 9110 section 8.8.3); a bare one is
# a token (section 5.6.2). Header values arrive as latin-1 text, so obs-text
# is \x80-\xff.
_QUOTED: Final = r'"[\x21\x23-\x7e\x80-\xff]*"'
_BARE: Final = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_ONE: Final = rf"(?:{_QUOTED}|{_BARE})"
_TAG: Final = re.compile(_ONE)
_LIST: Final = re.compile(rf"{_ONE}(?:[ \t]*,[ \t]*{_ONE})*")
_WEAK: Final = re.compile(r'(?:^|,)[ \t]*W/"')
READABLE: Final = 'send the version as "VERSION", several as "A", "B", or *'


@dataclass(frozen=True)
class IfMatch:
    """A write's precondition: any current version, or one of `versions`."""

    versions: frozenset[str] = frozenset()
    any_version: bool = False

    @property
    def single(self) -> str | None:
        """The one version it names, when it names exactly one and not `*`."""
        if self.any_version or len(self.versions) != 1:
            return None
        return next(iter(self.versions))

    def matches(self, current: str) -> bool:
        return self.any_version or current in self.versions


def parse_if_match(header: str | None) -> IfMatch | None:
    """The precondition an If-Match header states; None without the header.

    Raises InvalidRequest for a header that is empty or cannot be read.
    """
    if header is None:
        return None
    text = header.strip(" \t")
    if not text:
        raise InvalidRequest(f"If-Match is empty; {READABLE}")
    if text == "*":
        return IfMatch(any_version=True)
    if _WEAK.search(text):
        raise InvalidRequest("If-Match needs a strong version tag")
    if not _LIST.fullmatch(text):
        raise InvalidRequest(f"If-Match cannot be read; {READABLE}")
    tags = [tag.strip('"') for tag in _TAG.findall(text)]
    if "*" in tags:
        raise InvalidRequest(f"If-Match takes * alone; {READABLE}")
    return IfMatch(frozenset(tags))
