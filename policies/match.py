"""Secret names and the patterns that grant them.

A secret name is a path of segments: `payments/stripe-key`. A pattern is a name
that may use two wildcards, always bounded by `/`:

- `*` matches any characters inside one segment, and may be part of one
  (`payments/root-*`). A segment that is only `*` matches a non-empty segment.
- `**` is a whole segment and matches zero or more whole segments, so
  `payments/**` matches `payments` itself, `payments/a` and `payments/a/b`.

Everything else is literal. `payments/*` never matches `payments-old/x` nor
`payments/a/b`. A segment holds at most two `*` and a pattern at most two `**`,
so that matching stays fast whatever the name. Error messages name the rule
broken, never the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise
from typing import Final

MAX_LENGTH: Final = 256
RESERVED_LAST_SEGMENTS: Final = frozenset(
    {"rotate", "refresh", "compromise", "consumers", "versions"}
)
DEEP: Final = "**"
# Limits that keep the cost of matching a name of MAX_LENGTH small.
MAX_STARS: Final = 2
MAX_DEEP: Final = 2

_NAME_SEGMENT: Final = re.compile(r"[A-Za-z0-9._-]+")
_PATTERN_CHARS: Final = re.compile(r"[A-Za-z0-9._*/-]+")
_ANY_SEGMENT: Final = "[^/]+"
_ANY_DEPTH: Final = "[^/]+(?:/[^/]+)*"
# A character no name contains: it stands for what a `*` of the covered
# pattern may match when checking one segment pattern against another.
_WILD: Final = "\x00"


def validate_secret_name(name: str) -> None:
    """Return when `name` is a valid secret name; raise ValueError naming the rule."""
    if not isinstance(name, str) or not name:
        raise ValueError("a secret name must not be empty")
    if len(name) > MAX_LENGTH:
        raise ValueError(f"a secret name must be at most {MAX_LENGTH} characters")

    segments = name.split("/")
    if "" in segments:
        raise ValueError(
            "a secret name must not start or end with '/' nor contain '//'"
        )
    for segment in segments:
        if not _NAME_SEGMENT.fullmatch(segment):
            raise ValueError(
                "a secret name may only contain letters, digits, '.', '_', '-' and '/'"
            )
        if segment in {".", ".."}:
            raise ValueError("a secret name must not have a '.' or '..' segment")
    if segments[-1] in RESERVED_LAST_SEGMENTS:
        raise ValueError(
            "a secret name must not end in rotate, refresh, compromise, consumers "
            "or versions"
        )


def is_secret_name(name: str) -> bool:
    """Whether `name` is a valid secret name."""
    try:
        validate_secret_name(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Pattern:
    """A validated secret-name pattern; build one with `Pattern.parse`.

    Constructing `Pattern(text)` validates as well, so no invalid pattern exists.
    """

    text: str
    segments: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        segments = _validate_pattern(self.text)
        object.__setattr__(self, "segments", segments)
        object.__setattr__(self, "_regex", re.compile(_pattern_regex(segments)))

    @classmethod
    def parse(cls, text: str) -> Pattern:
        """The pattern `text` stands for; raises ValueError naming the rule broken."""
        return cls(text)

    def __str__(self) -> str:
        return self.text

    def matches(self, name: str) -> bool:
        """Whether the secret name `name` is matched by this pattern."""
        return self._regex.fullmatch(name) is not None

    def covers(self, other: Pattern) -> bool:
        """Whether every name `other` matches is matched by this pattern too.

        Conservative: False when the inclusion cannot be shown, as for
        `*/**` against `**`, which match the same names.
        """
        # Each direction proves inclusions the other misses, such as `**/*`
        # over `a/**` only from the right.
        return _covers(self.segments, other.segments) or _covers(
            self.segments[::-1], other.segments[::-1]
        )

    def overlaps(self, other: Pattern) -> bool:
        """Whether some name is matched by both patterns."""
        return _overlaps(self.segments, other.segments)


def _validate_pattern(text: str) -> tuple[str, ...]:
    if not isinstance(text, str) or not text:
        raise ValueError("a pattern must not be empty")
    if len(text) > MAX_LENGTH:
        raise ValueError(f"a pattern must be at most {MAX_LENGTH} characters")
    if not _PATTERN_CHARS.fullmatch(text):
        raise ValueError(
            "a pattern may only contain letters, digits, '.', '_', '-', '*' and '/'"
        )

    segments = tuple(text.split("/"))
    if segments[0] == "" or segments[-1] == "":
        raise ValueError("a pattern must not start or end with '/'")
    if "" in segments:
        raise ValueError("a pattern must not contain an empty segment ('//')")
    if any(segment in {".", ".."} for segment in segments):
        raise ValueError("a pattern must not have a '.' or '..' segment")
    if any(DEEP in segment and segment != DEEP for segment in segments):
        raise ValueError("'**' must be a whole segment of a pattern")
    if any(a == b == DEEP for a, b in pairwise(segments)):
        raise ValueError("a pattern must not repeat '**' in a row")
    if segments.count(DEEP) > MAX_DEEP:
        raise ValueError(f"a pattern may use '**' at most {MAX_DEEP} times")
    if any(s.count("*") > MAX_STARS for s in segments if s != DEEP):
        raise ValueError(f"a pattern segment may use '*' at most {MAX_STARS} times")
    return segments


def _segment_regex(segment: str) -> str:
    if set(segment) == {"*"}:
        return _ANY_SEGMENT
    return "[^/]*".join(re.escape(part) for part in segment.split("*"))


def _pattern_regex(segments: tuple[str, ...]) -> str:
    last = len(segments) - 1
    pieces: list[str] = []
    for index, segment in enumerate(segments):
        if segment == DEEP and index == last:
            pieces.append(f"(?:/{_ANY_SEGMENT})*" if index else _ANY_DEPTH)
        elif segment == DEEP:
            pieces.append(f"(?:{_ANY_SEGMENT}/)*")
        else:
            # Atomic up to the end of the name's segment: once a segment has
            # matched whole, no later failure retries it another way.
            pieces.append(f"(?>{_segment_regex(segment)}(?![^/]))")
            next_is_final_deep = index + 1 == last and segments[last] == DEEP
            if index < last and not next_is_final_deep:
                pieces.append("/")
    return "".join(pieces)


@lru_cache(maxsize=4096)
def _segment_covers(wide: str, narrow: str) -> bool:
    # Sound: each `*` of `narrow` becomes a character only a `*` of `wide`
    # matches, so the match holds whatever that `*` stands for.
    return re.fullmatch(_segment_regex(wide), narrow.replace("*", _WILD)) is not None


def _segment_overlaps(a: str, b: str) -> bool:
    if "*" not in a:
        return re.fullmatch(_segment_regex(b), a) is not None
    if "*" not in b:
        return re.fullmatch(_segment_regex(a), b) is not None

    # Both have a `*`: a common name exists exactly when the literal prefixes
    # agree and the literal suffixes agree (the middles fit between them).
    a_prefix, a_suffix = a.split("*")[0], a.split("*")[-1]
    b_prefix, b_suffix = b.split("*")[0], b.split("*")[-1]
    prefixes_agree = a_prefix.startswith(b_prefix) or b_prefix.startswith(a_prefix)
    suffixes_agree = a_suffix.endswith(b_suffix) or b_suffix.endswith(a_suffix)
    return prefixes_agree and suffixes_agree


def _covers(wide: tuple[str, ...], narrow: tuple[str, ...]) -> bool:
    memo: dict[tuple[int, int], bool] = {}

    def covers_from(i: int, j: int) -> bool:
        key = (i, j)
        if key not in memo:
            memo[key] = step(i, j)
        return memo[key]

    def step(i: int, j: int) -> bool:
        if i == len(wide):
            return j == len(narrow)
        if wide[i] == DEEP:
            return covers_from(i + 1, j) or (j < len(narrow) and covers_from(i, j + 1))
        if j == len(narrow):
            return False
        if narrow[j] == DEEP:
            # Only a segment matching anything can take the segments of a `**`:
            # none of them here, or the first one and the rest still to come.
            return (
                _segment_regex(wide[i]) == _ANY_SEGMENT
                and covers_from(i, j + 1)
                and covers_from(i + 1, j)
            )
        return _segment_covers(wide[i], narrow[j]) and covers_from(i + 1, j + 1)

    return covers_from(0, 0)


def _overlaps(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    memo: dict[tuple[int, int], bool] = {}

    def overlaps_from(i: int, j: int) -> bool:
        key = (i, j)
        if key not in memo:
            memo[key] = step(i, j)
        return memo[key]

    def step(i: int, j: int) -> bool:
        if i == len(a) and j == len(b):
            return True

        a_deep = i < len(a) and a[i] == DEEP
        b_deep = j < len(b) and b[j] == DEEP
        if a_deep or b_deep:
            # A `**` stops here, or takes one more segment of the other side.
            return (
                (a_deep and overlaps_from(i + 1, j))
                or (b_deep and overlaps_from(i, j + 1))
                or (a_deep and j < len(b) and overlaps_from(i, j + 1))
                or (b_deep and i < len(a) and overlaps_from(i + 1, j))
            )

        if i == len(a) or j == len(b):
            return False
        return _segment_overlaps(a[i], b[j]) and overlaps_from(i + 1, j + 1)

    return overlaps_from(0, 0)
