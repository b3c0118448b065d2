"""The answer of `GET /v1/{env}/policies/explain`: a decision and what made it.

`effect` says which kind of rule decided: `granted` (a grant or `admin`),
`denied` (an explicit deny, which wins over every grant) or `not_granted`
(nothing grants it; `document` and `rule` are then null, or name a rule that
grants only part of a pattern). `document_revision` pins the exact text of the
document that decided, readable from `GET policies/{name}/revisions/{revision}`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from policies.evaluate import Decision
from service.environment import Environment

if TYPE_CHECKING:
    from service.broker import Broker

DENY_RULE = ".secrets.deny["


def explanation(
    broker: Broker, environment: Environment, decision: Decision
) -> dict[str, Any]:
    """The decision as the API answers it (reads the store for the revision)."""
    revision = None
    if decision.document is not None:
        revisions = dict(broker.policies.names(environment.name))
        revision = revisions.get(decision.document)
    return {
        "allowed": decision.allowed,
        "effect": _effect(decision),
        "document": decision.document,
        "document_revision": revision,
        "rule": decision.rule,
        "reason": decision.reason,
        "policy_revision": environment.policy_revision,
    }


def _effect(decision: Decision) -> str:
    if decision.allowed:
        return "granted"
    if decision.rule is not None and DENY_RULE in decision.rule:
        return "denied"
    return "not_granted"
