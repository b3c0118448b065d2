"""An environment's policy: its named documents merged, and the questions asked of it.

Everything not granted is denied. A deny wins over every grant, `admin`
included; `admin` allows every action on every secret the service is not
denied. A service named in several documents gets the union of their grants
and denies, and the smallest `max_ttl` any of them declares.

Token scopes are checked when a token is issued (`grant`); `decide` is asked
again at every secret read, so a policy change takes effect at once and a deny
that only overlaps a granted pattern still holds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from cachetools import LRUCache

from policies.duration import format_duration
from policies.errors import InvalidScope, UnknownService, refused_message
from policies.match import Pattern, is_secret_name
from policies.model import (
    SERVICE_NAME,
    PolicyDocument,
    SecretDeclaration,
    ServiceRules,
)
from policies.rates import Rate
from policies.scopes import (
    ADMIN,
    SECRETS_PREFIX,
    Action,
    SecretScope,
    is_broker_scope,
    is_scope_token,
    parse_secret_scope,
)
from service.errors import InvalidRequest, PolicyInvalid

__all__ = [
    "Action",
    "Decision",
    "Grant",
    "Policy",
    "ServiceChange",
    "diff",
]

MEMO_SIZE: Final = 10_000

NO_RULE: Final = "no rule grants it"
UNKNOWN_SERVICE: Final = "no policy names this service"


@dataclass(frozen=True, slots=True)
class Decision:
    """Allowed or not, and what decided: the document and rule, and why."""

    allowed: bool
    document: str | None
    rule: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Grant:
    """The scopes a token may carry and the longest lifetime it may have."""

    scopes: tuple[str, ...]
    max_ttl: int | None


@dataclass(frozen=True, slots=True)
class ServiceChange:
    """Grants a new policy adds to and removes from one service."""

    added: tuple[str, ...]
    removed: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Rule:
    document: str
    rule: str


@dataclass(frozen=True, slots=True)
class _PatternRule:
    document: str
    rule: str
    pattern: Pattern


@dataclass
class _ServiceView:
    """One service's rules gathered from every document."""

    admin: list[_Rule] = field(default_factory=list)
    grants: dict[Action, list[_PatternRule]] = field(
        default_factory=lambda: {action: [] for action in Action}
    )
    denies: list[_PatternRule] = field(default_factory=list)
    tokens: dict[str, dict[str, _Rule]] = field(default_factory=dict)
    max_ttl: int | None = None
    rate_limit: Rate | None = None


class Policy:
    """The merged policy of one environment; build it with `from_documents`."""

    __slots__ = ("_bindings", "_documents", "_explained", "_lock", "_memo", "_views")

    def __init__(
        self,
        documents: Iterable[str],
        views: Mapping[str, _ServiceView],
        bindings: Mapping[str, SecretDeclaration],
    ) -> None:
        self._documents = tuple(documents)
        self._views = dict(views)
        self._bindings = dict(bindings)
        self._memo: LRUCache[tuple[str, Action, str], Decision] = LRUCache(MEMO_SIZE)
        # Every token request asks for its scopes: the same few, again and again.
        self._explained: LRUCache[tuple[str, str], Decision] = LRUCache(MEMO_SIZE)
        self._lock = threading.Lock()

    @classmethod
    def from_documents(cls, documents: Mapping[str, PolicyDocument]) -> Policy:
        """Merge an environment's named documents.

        Raises PolicyInvalid when two documents declare the same secret.
        """
        views: dict[str, _ServiceView] = {}
        bindings: dict[str, SecretDeclaration] = {}
        declared_by: dict[str, str] = {}
        problems: list[str] = []

        for name in sorted(documents):
            document = documents[name]
            for service, rules in document.services.items():
                _merge_service(
                    views.setdefault(service, _ServiceView()), name, service, rules
                )
            for secret, declaration in document.secrets.items():
                if secret in declared_by:
                    problems.append(
                        f"policy '{name}': secrets.{secret}: already declared by "
                        f"policy '{declared_by[secret]}'"
                    )
                    continue
                declared_by[secret] = name
                bindings[secret] = declaration

        if problems:
            raise PolicyInvalid(problems[0], problems)
        return cls(sorted(documents), views, bindings)

    def __repr__(self) -> str:
        return (
            f"Policy(documents={list(self._documents)!r}, "
            f"services={len(self._views)}, secrets={len(self._bindings)})"
        )

    @property
    def documents(self) -> tuple[str, ...]:
        """The names of the merged documents, sorted."""
        return self._documents

    @property
    def services(self) -> frozenset[str]:
        """Every service some document names."""
        return frozenset(self._views)

    def has_service(self, name: str) -> bool:
        """Whether some document names the service `name`."""
        return name in self._views

    @property
    def admins(self) -> frozenset[str]:
        """Every service some document makes an admin."""
        return frozenset(name for name, view in self._views.items() if view.admin)

    def binding(self, secret_name: str) -> SecretDeclaration | None:
        """The declaration of `secret_name`, or None when no document declares it."""
        return self._bindings.get(secret_name)

    def declarations(self) -> dict[str, SecretDeclaration]:
        """Every declared secret and its declaration (a copy)."""
        return dict(self._bindings)

    def decide(self, service: str, action: Action | str, secret_name: str) -> Decision:
        """Whether `service` may do `action` on the secret `secret_name`.

        Raises InvalidRequest for an unknown action. An invalid secret name is
        denied, never matched.
        """
        action = _action(action)
        if not is_secret_name(secret_name):
            return Decision(False, None, None, "not a valid secret name")

        key = (service, action, secret_name)
        with self._lock:
            decision = self._memo.get(key)
        if decision is None:
            decision = self._decide(service, action, secret_name)
            with self._lock:
                self._memo[key] = decision
        return decision

    def explain(self, service: str, scope: str) -> Decision:
        """Whether `service` may hold `scope`, and the document and rule that decided.

        A scope that is neither `admin` nor `secrets:...` is looked up in the
        service's `tokens` for every audience. Raises InvalidRequest when
        `scope` is malformed.
        """
        view = self._views.get(service)
        if view is None:
            return Decision(False, None, None, UNKNOWN_SERVICE)
        try:
            return self._judged(service, view, scope)
        except ValueError as error:
            raise InvalidRequest(f"scope: {error}") from None

    def _judged(self, service: str, view: _ServiceView, scope: str) -> Decision:
        """`_judge`, remembered. Raises ValueError for a malformed scope."""
        key = (service, scope)
        with self._lock:
            decision = self._explained.get(key)
        if decision is None:
            decision = _judge(view, scope)
            with self._lock:
                self._explained[key] = decision
        return decision

    def grant(
        self,
        service: str,
        requested: Sequence[str] | None,
        audience: str | None,
    ) -> Grant:
        """The scopes `service` gets for a token, all of `requested` or none.

        Without `requested`, every scope the policy gives the service (for
        `audience`, when given). Raises UnknownService when no document names
        the service, InvalidScope listing every requested scope not granted,
        and InvalidRequest when `audience` is not a service name.
        """
        requested = list(dict.fromkeys(requested or ()))
        view = self._views.get(service)
        if view is None:
            raise UnknownService(UNKNOWN_SERVICE, refused=requested)

        if audience is None:
            scopes = _broker_scopes(
                view, requested, lambda scope: self._judged(service, view, scope)
            )
        else:
            scopes = _audience_scopes(view, audience, requested)
        return Grant(scopes, view.max_ttl)

    def rate_limit(self, service: str) -> Rate | None:
        """The strictest `rate_limit` any document sets for `service`, if any."""
        view = self._views.get(service)
        return None if view is None else view.rate_limit

    def statements(self, service: str) -> frozenset[str]:
        """What the policy says of `service`, one string per grant, for `diff`.

        `secrets:ACTION:PATTERN`, `deny:PATTERN`, `tokens:AUDIENCE:SCOPE`,
        `admin`, `max_ttl:DURATION` and `rate_limit:RATE`; empty for an unknown
        service.
        """
        view = self._views.get(service)
        if view is None:
            return frozenset()

        found = {
            str(SecretScope(action, rule.pattern))
            for action, rules in view.grants.items()
            for rule in rules
        }
        found.update(f"deny:{rule.pattern}" for rule in view.denies)
        found.update(
            f"tokens:{audience}:{scope}"
            for audience, scopes in view.tokens.items()
            for scope in scopes
        )
        if view.admin:
            found.add(ADMIN)
        if view.max_ttl is not None:
            found.add(f"max_ttl:{format_duration(view.max_ttl)}")
        if view.rate_limit is not None:
            found.add(f"rate_limit:{view.rate_limit}")
        return frozenset(found)

    def _decide(self, service: str, action: Action, secret_name: str) -> Decision:
        view = self._views.get(service)
        if view is None:
            return Decision(False, None, None, UNKNOWN_SERVICE)

        for deny in view.denies:
            if deny.pattern.matches(secret_name):
                return _denied_by(deny)
        for rule in view.grants[action]:
            if rule.pattern.matches(secret_name):
                return _granted_by(rule, action)
        if view.admin:
            return _admin(view.admin[0])
        return _nothing()


def diff(old: Policy, new: Policy) -> dict[str, ServiceChange]:
    """Per service whose grants change, the statements added and removed."""
    changes: dict[str, ServiceChange] = {}
    for service in sorted(old.services | new.services):
        before, after = old.statements(service), new.statements(service)
        if before != after:
            changes[service] = ServiceChange(
                added=tuple(sorted(after - before)),
                removed=tuple(sorted(before - after)),
            )
    return changes


def _action(action: Action | str) -> Action:
    try:
        return Action(action)
    except ValueError:
        raise InvalidRequest(
            "the action must be read, write, rotate or revoke"
        ) from None


def _merge_service(
    view: _ServiceView, document: str, service: str, rules: ServiceRules
) -> None:
    prefix = f"services.{service}"
    if rules.admin:
        view.admin.append(_Rule(document, f"{prefix}.admin = true"))

    for action in Action:
        for index, pattern in enumerate(rules.secrets.for_action(action)):
            rule = f"{prefix}.secrets.{action}[{index}] = {pattern}"
            view.grants[action].append(_PatternRule(document, rule, pattern))
    for index, pattern in enumerate(rules.secrets.deny):
        rule = f"{prefix}.secrets.deny[{index}] = {pattern}"
        view.denies.append(_PatternRule(document, rule, pattern))

    for index, token in enumerate(rules.tokens):
        listed = view.tokens.setdefault(token.audience, {})
        for position, scope in enumerate(token.scopes):
            rule = f"{prefix}.tokens[{index}].scopes[{position}] = {scope}"
            listed.setdefault(scope, _Rule(document, rule))

    if rules.max_ttl is not None and view.max_ttl is not None:
        view.max_ttl = min(view.max_ttl, rules.max_ttl)
    elif rules.max_ttl is not None:
        view.max_ttl = rules.max_ttl

    # Several documents capping one service: the strictest cap holds.
    if rules.rate_limit is not None and (
        view.rate_limit is None
        or rules.rate_limit.per_second < view.rate_limit.per_second
    ):
        view.rate_limit = rules.rate_limit


def _judge(view: _ServiceView, scope: str) -> Decision:
    if scope == ADMIN:
        return _admin(view.admin[0]) if view.admin else _nothing()
    if scope.startswith(SECRETS_PREFIX):
        return _judge_secrets(view, parse_secret_scope(scope))
    if not is_scope_token(scope):
        raise ValueError("expected a scope without spaces or quotes")

    for audience, listed in view.tokens.items():
        if scope in listed:
            rule = listed[scope]
            reason = f"listed for tokens to audience '{audience}'"
            return Decision(True, rule.document, rule.rule, reason)
    return _nothing()


def _judge_secrets(view: _ServiceView, scope: SecretScope) -> Decision:
    for deny in view.denies:
        if deny.pattern.covers(scope.pattern):
            return _denied_by(deny)

    covering = [
        rule for rule in view.grants[scope.action] if rule.pattern.covers(scope.pattern)
    ]
    if covering:
        decision = _granted_by(covering[0], scope.action)
    elif view.admin:
        decision = _admin(view.admin[0])
    else:
        return _partly_or_nothing(view, scope)

    if any(deny.pattern.overlaps(scope.pattern) for deny in view.denies):
        reason = f"{decision.reason}; the names a deny rule matches stay denied"
        decision = replace(decision, reason=reason)
    return decision


def _partly_or_nothing(view: _ServiceView, scope: SecretScope) -> Decision:
    for rule in view.grants[scope.action]:
        if rule.pattern.overlaps(scope.pattern):
            reason = "this rule grants only part of it"
            return Decision(False, rule.document, rule.rule, reason)
    return _nothing()


def _grantable(judge: Callable[[str], Decision], scope: str) -> bool:
    if not is_broker_scope(scope):
        return False
    try:
        return judge(scope).allowed
    except ValueError:
        return False


def _broker_scopes(
    view: _ServiceView, requested: list[str], judge: Callable[[str], Decision]
) -> tuple[str, ...]:
    if not requested:
        return _default_scopes(view)

    refused = [scope for scope in requested if not _grantable(judge, scope)]
    if refused:
        raise InvalidScope(refused_message(requested, refused), refused)
    return tuple(requested)


def _default_scopes(view: _ServiceView) -> tuple[str, ...]:
    scopes = [
        str(SecretScope(action, rule.pattern))
        for action, rules in view.grants.items()
        for rule in rules
        if not any(deny.pattern.covers(rule.pattern) for deny in view.denies)
    ]
    if view.admin:
        scopes.append(ADMIN)
    return tuple(dict.fromkeys(scopes))


def _audience_scopes(
    view: _ServiceView, audience: str, requested: list[str]
) -> tuple[str, ...]:
    if not SERVICE_NAME.fullmatch(audience):
        raise InvalidRequest("an audience must be a service name")

    listed = view.tokens.get(audience, {})
    if not listed and not requested:
        raise InvalidScope(
            "no scope for the requested audience is granted to this client"
        )
    if not requested:
        return tuple(listed)

    refused = [scope for scope in requested if scope not in listed]
    if refused:
        raise InvalidScope(refused_message(requested, refused, audience=True), refused)
    return tuple(requested)


def _granted_by(rule: _PatternRule, action: Action) -> Decision:
    return Decision(True, rule.document, rule.rule, f"granted by a {action} rule")


def _denied_by(rule: _PatternRule) -> Decision:
    reason = "an explicit deny wins over every grant"
    return Decision(False, rule.document, rule.rule, reason)


def _admin(rule: _Rule) -> Decision:
    reason = "admin allows every action on every secret not denied"
    return Decision(True, rule.document, rule.rule, reason)


def _nothing() -> Decision:
    return Decision(False, None, None, NO_RULE)
