"""The scopes the broker itself grants: `secrets:ACTION:PATTERN` and `admin`.

Any other scope belongs to a service-to-service token and means whatever its
audience makes of it; the broker only checks that the policy lists it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from policies.match import Pattern

ADMIN: Final = "admin"
SECRETS_PREFIX: Final = "secrets:"

# RFC 6749 §3.3 scope-token characters.
_SCOPE_TOKEN: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,300}")


class Action(StrEnum):
    """What a service does to a secret."""

    READ = "read"
    WRITE = "write"
    ROTATE = "rotate"
    REVOKE = "revoke"


@dataclass(frozen=True, slots=True)
class SecretScope:
    """`secrets:ACTION:PATTERN`: the action on every secret the pattern matches."""

    action: Action
    pattern: Pattern

    def __str__(self) -> str:
        return f"{SECRETS_PREFIX}{self.action}:{self.pattern}"


def is_scope_token(text: str) -> bool:
    """Whether `text` is a well-formed OAuth scope token (RFC 6749 §3.3)."""
    return isinstance(text, str) and _SCOPE_TOKEN.fullmatch(text) is not None


def is_broker_scope(text: str) -> bool:
    """Whether `text` is `admin` or starts `secrets:`: a scope the broker grants."""
    return text == ADMIN or text.startswith(SECRETS_PREFIX)


def parse_secret_scope(text: str) -> SecretScope:
    """The `secrets:ACTION:PATTERN` scope `text` stands for.

    Raises ValueError when it is not one; the message does not repeat `text`.
    """
    prefix, _, rest = text.partition(SECRETS_PREFIX)
    action_text, separator, pattern_text = rest.partition(":")
    if prefix or not separator:
        raise ValueError("expected a scope of the form secrets:ACTION:PATTERN")
    try:
        action = Action(action_text)
    except ValueError:
        raise ValueError(
            "the action of a secrets scope must be read, write, rotate or revoke"
        ) from None
    return SecretScope(action, Pattern.parse(pattern_text))
