"""Errors of policy evaluation, under the project's one hierarchy.

InvalidRequest (service.errors)
└── InvalidScope            400 a requested scope is not granted
    └── UnknownService      400 no policy document names the service
"""

from __future__ import annotations

from collections.abc import Iterable

from policies.scopes import is_scope_token
from service.errors import InvalidRequest


class InvalidScope(InvalidRequest):
    """A requested scope is not granted by the policy; nothing was issued."""

    code = "invalid_scope"

    def __init__(self, message: str, refused: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.refused = tuple(refused)


class UnknownService(InvalidScope):
    """No policy document of the environment names the service."""


def refused_message(refused: Iterable[str], audience: str | None = None) -> str:
    """A sentence listing the refused scopes; a malformed one is not repeated."""
    shown = [
        scope if is_scope_token(scope) else "<malformed scope>" for scope in refused
    ]
    target = f" for audience '{audience}'" if audience else ""
    return f"scope not granted{target}: {' '.join(shown)}"
