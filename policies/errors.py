"""Errors of policy evaluation, under the project's one hierarchy.

InvalidRequest (service.errors)
└── InvalidScope            400 a requested scope is not granted
    └── UnknownService      400 no policy document names the service
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from service.errors import InvalidRequest


class InvalidScope(InvalidRequest):
    """A requested scope is not granted by the policy; nothing was issued."""

    code = "invalid_scope"

    def __init__(self, message: str, refused: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.refused = tuple(refused)


class UnknownService(InvalidScope):
    """No policy document of the environment names the service."""


def refused_message(
    requested: Sequence[str], refused: Iterable[str], *, audience: bool = False
) -> str:
    """A sentence placing the refused scopes among those requested, by position.

    A requested scope or audience is the caller's text, and callers paste the
    wrong thing into it; the answer repeats neither.
    """
    target = " for the requested audience" if audience else ""
    if len(requested) == 1:
        return f"the requested scope is not granted to this client{target}"
    not_granted = set(refused)
    positions = [
        str(place) for place, scope in enumerate(requested, 1) if scope in not_granted
    ]
    if len(positions) == 1:
        which = f"requested scope {positions[0]} of {len(requested)} is"
    else:
        listed = f"{', '.join(positions[:-1])} and {positions[-1]}"
        which = f"requested scopes {listed} of {len(requested)} are"
    return f"{which} not granted to this client{target}"
