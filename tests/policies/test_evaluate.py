"""An environment's merged policy: decisions, token grants, explanations, diffs."""

from __future__ import annotations

import textwrap

import pytest

from policies.errors import InvalidScope, UnknownService
from policies.evaluate import Action, Decision, Grant, Policy, ServiceChange, diff
from policies.model import parse_document
from service.errors import InvalidRequest, PolicyInvalid

PAYMENTS = """\
services:
  billing-api:
    secrets:
      read: ["payments/*"]
      deny: ["payments/root-*"]
    tokens:
      - audience: ledger-api
        scopes: ["ledger:write", "ledger:read"]
    max_ttl: 15m
  ops-console:
    admin: true
    secrets:
      deny: ["payments/root-*"]
secrets:
  payments/stripe-key:
    backend: aws-main
    path: prod/payments/stripe
"""

BILLING_READ = "services.billing-api.secrets.read[0] = payments/*"
BILLING_DENY = "services.billing-api.secrets.deny[0] = payments/root-*"


def policy(**documents: str) -> Policy:
    return Policy.from_documents(
        {
            name.replace("_", "-"): parse_document(
                name.replace("_", "-"), textwrap.dedent(text), "application/yaml"
            )
            for name, text in documents.items()
        }
    )


def refused(
    subject: Policy,
    service: str,
    requested: list[str] | None,
    audience: str | None = None,
) -> InvalidScope:
    with pytest.raises(InvalidScope) as caught:
        subject.grant(service, requested, audience)
    return caught.value


@pytest.fixture
def payments() -> Policy:
    return policy(payments=PAYMENTS)


# decide


def test_a_read_grant_allows_reading_a_matching_secret(payments: Policy) -> None:
    decision = payments.decide("billing-api", Action.READ, "payments/stripe-key")

    assert decision == Decision(
        True, "payments", BILLING_READ, "granted by a read rule"
    )


def test_an_explicit_deny_wins_over_a_grant(payments: Policy) -> None:
    decision = payments.decide("billing-api", Action.READ, "payments/root-key")

    assert decision == Decision(
        False, "payments", BILLING_DENY, "an explicit deny wins over every grant"
    )


def test_everything_not_granted_is_denied(payments: Policy) -> None:
    decision = payments.decide("billing-api", Action.READ, "payments-old/x")

    assert decision == Decision(False, None, None, "no rule grants it")


def test_a_read_grant_does_not_allow_writing(payments: Policy) -> None:
    assert not payments.decide(
        "billing-api", Action.WRITE, "payments/stripe-key"
    ).allowed


@pytest.mark.parametrize("action", list(Action), ids=str)
def test_admin_allows_every_action_on_every_secret(
    payments: Policy, action: Action
) -> None:
    decision = payments.decide("ops-console", action, "anything/at/all")

    assert (decision.allowed, decision.rule) == (
        True,
        "services.ops-console.admin = true",
    )


def test_a_deny_of_the_admin_service_still_wins(payments: Policy) -> None:
    decision = payments.decide("ops-console", Action.READ, "payments/root-key")

    assert (decision.allowed, decision.rule) == (
        False,
        "services.ops-console.secrets.deny[0] = payments/root-*",
    )


def test_a_service_no_policy_names_is_denied(payments: Policy) -> None:
    decision = payments.decide("stranger", Action.READ, "payments/stripe-key")

    assert decision == Decision(False, None, None, "no policy names this service")


@pytest.mark.parametrize(
    "name", ["payments/..", "payments/x/rotate", "payments//x", ""], ids=repr
)
def test_an_invalid_secret_name_is_denied_even_to_admin(
    payments: Policy, name: str
) -> None:
    decision = payments.decide("ops-console", Action.READ, name)

    assert decision == Decision(False, None, None, "not a valid secret name")


def test_decide_accepts_the_action_as_text(payments: Policy) -> None:
    assert payments.decide("billing-api", "read", "payments/stripe-key").allowed


def test_decide_refuses_an_unknown_action(payments: Policy) -> None:
    with pytest.raises(InvalidRequest):
        payments.decide("billing-api", "delete", "payments/stripe-key")


def test_repeated_decisions_give_the_same_answer(payments: Policy) -> None:
    first = payments.decide("billing-api", Action.READ, "payments/root-key")
    second = payments.decide("billing-api", Action.READ, "payments/root-key")

    assert first == second
    assert not second.allowed


# merging documents


def test_grants_of_several_documents_are_unioned() -> None:
    merged = policy(
        payments=PAYMENTS,
        ledger="services: {billing-api: {secrets: {write: ['ledger/*']}}}",
    )

    assert merged.decide("billing-api", Action.READ, "payments/stripe-key").allowed
    assert merged.decide("billing-api", Action.WRITE, "ledger/key").document == "ledger"


def test_a_deny_from_another_document_wins() -> None:
    merged = policy(
        payments=PAYMENTS,
        lockdown="services: {billing-api: {secrets: {deny: ['payments/stripe-*']}}}",
    )

    decision = merged.decide("billing-api", Action.READ, "payments/stripe-key")

    assert (decision.allowed, decision.document) == (False, "lockdown")


def test_admin_holds_when_any_document_says_so() -> None:
    merged = policy(
        payments=PAYMENTS,
        admins="services: {billing-api: {admin: true}}",
    )

    assert merged.decide("billing-api", Action.ROTATE, "ledger/key").allowed


def test_the_smallest_max_ttl_declared_applies() -> None:
    merged = policy(
        payments=PAYMENTS,
        short="services: {billing-api: {max_ttl: 5m}}",
        long="services: {billing-api: {max_ttl: 1h}}",
    )

    assert merged.grant("billing-api", None, None).max_ttl == 300


def test_the_same_secret_declared_in_two_documents_is_invalid() -> None:
    with pytest.raises(PolicyInvalid) as caught:
        policy(
            payments=PAYMENTS,
            other="secrets: {payments/stripe-key: {backend: vault}}",
        )

    assert caught.value.problems == [
        "policy 'payments': secrets.payments/stripe-key: "
        "already declared by policy 'other'"
    ]


def test_an_audience_no_policy_names_is_fine(payments: Policy) -> None:
    assert not payments.has_service("ledger-api")
    assert payments.grant("billing-api", None, "ledger-api").scopes == (
        "ledger:write",
        "ledger:read",
    )


def test_services_are_every_service_some_document_names(payments: Policy) -> None:
    assert payments.services == frozenset({"billing-api", "ops-console"})
    assert payments.has_service("billing-api")
    assert not payments.has_service("ledger-api")


def test_binding_answers_the_secret_declaration(payments: Policy) -> None:
    declaration = payments.binding("payments/stripe-key")

    assert declaration is not None
    assert (declaration.backend, declaration.path) == (
        "aws-main",
        "prod/payments/stripe",
    )


def test_binding_of_an_undeclared_secret_is_none(payments: Policy) -> None:
    assert payments.binding("payments/other") is None


def test_no_documents_make_an_empty_policy_that_denies() -> None:
    empty = Policy.from_documents({})

    assert empty.services == frozenset()
    assert not empty.decide("anyone", Action.READ, "a").allowed


def test_policy_repr_counts_without_listing_rules(payments: Policy) -> None:
    assert repr(payments) == "Policy(documents=['payments'], services=2, secrets=1)"


# grant


def test_no_requested_scope_grants_every_scope_of_the_service(payments: Policy) -> None:
    assert payments.grant("billing-api", None, None) == Grant(
        ("secrets:read:payments/*",), 900
    )


def test_an_empty_request_is_the_same_as_none(payments: Policy) -> None:
    assert payments.grant("billing-api", [], None) == payments.grant(
        "billing-api", None, None
    )


def test_admin_service_gets_admin_by_default(payments: Policy) -> None:
    assert payments.grant("ops-console", None, None) == Grant(("admin",), None)


def test_default_scopes_leave_out_a_grant_its_deny_covers() -> None:
    merged = policy(
        payments="services: {a: {secrets: {read: ['x/*', 'y/*'], deny: ['y/**']}}}"
    )

    assert merged.grant("a", None, None).scopes == ("secrets:read:x/*",)


@pytest.mark.parametrize(
    "scope",
    [
        "secrets:read:payments/*",
        "secrets:read:payments/stripe-key",
        "secrets:read:payments/s*",
    ],
    ids=["the-pattern-itself", "one-name", "a-narrower-pattern"],
)
def test_a_requested_scope_a_grant_covers_is_granted(
    payments: Policy, scope: str
) -> None:
    assert payments.grant("billing-api", [scope], None).scopes == (scope,)


def test_a_deny_that_only_overlaps_is_left_to_decide(payments: Policy) -> None:
    grant = payments.grant("billing-api", ["secrets:read:payments/*"], None)

    assert grant.scopes == ("secrets:read:payments/*",)
    assert not payments.decide("billing-api", Action.READ, "payments/root-key").allowed


@pytest.mark.parametrize(
    "scope",
    [
        "secrets:read:payments/**",
        "secrets:read:payments/root-key",
        "secrets:read:payments/root-*",
        "secrets:write:payments/stripe-key",
        "secrets:read:payments-old/*",
        "admin",
        "ledger:write",
        "secrets:delete:payments/*",
        "secrets:read:payments//x",
    ],
    ids=[
        "wider-than-granted",
        "denied-name",
        "denied-pattern",
        "other-action",
        "sibling-prefix",
        "admin-to-non-admin",
        "audience-scope-without-audience",
        "unknown-action",
        "malformed-pattern",
    ],
)
def test_a_scope_not_granted_is_invalid_scope(payments: Policy, scope: str) -> None:
    error = refused(payments, "billing-api", [scope])

    assert (error.code, error.status, error.refused) == ("invalid_scope", 400, (scope,))


def test_invalid_scope_lists_every_refused_scope_and_only_those(
    payments: Policy,
) -> None:
    error = refused(
        payments,
        "billing-api",
        ["secrets:read:payments/*", "admin", "secrets:write:payments/x"],
    )

    assert error.refused == ("admin", "secrets:write:payments/x")
    assert (
        error.message == "requested scopes 2 and 3 of 3 are not granted to this client"
    )


def test_nothing_is_silently_narrowed(payments: Policy) -> None:
    error = refused(
        payments, "billing-api", ["secrets:read:payments/*", "secrets:read:**"]
    )

    assert error.refused == ("secrets:read:**",)


def test_a_malformed_scope_is_not_repeated(payments: Policy) -> None:
    error = refused(payments, "billing-api", ['CANARY-7f3a "quoted"'])

    assert "CANARY-7f3a" not in error.message
    assert error.message == "the requested scope is not granted to this client"


def test_a_well_formed_scope_is_not_repeated_either(payments: Policy) -> None:
    """A scope token is still the caller's text; it may hold a pasted secret."""
    error = refused(payments, "billing-api", ["secrets:read:payments/*", "CANARY-7f3a"])

    assert "CANARY-7f3a" not in error.message
    assert error.message == "requested scope 2 of 2 is not granted to this client"


def test_a_requested_scope_twice_is_granted_once(payments: Policy) -> None:
    scope = "secrets:read:payments/*"

    assert payments.grant("billing-api", [scope, scope], None).scopes == (scope,)


def test_admin_service_may_request_admin_and_any_secrets_scope(
    payments: Policy,
) -> None:
    requested = ["admin", "secrets:write:**", "secrets:rotate:ledger/*"]

    assert payments.grant("ops-console", requested, None).scopes == tuple(requested)


def test_admin_service_may_not_request_what_its_deny_covers(payments: Policy) -> None:
    error = refused(payments, "ops-console", ["secrets:read:payments/root-key"])

    assert error.refused == ("secrets:read:payments/root-key",)


def test_a_service_no_policy_names_gets_unknown_service(payments: Policy) -> None:
    error = refused(payments, "stranger", None)

    assert isinstance(error, UnknownService)
    assert (error.code, error.message) == (
        "invalid_scope",
        "no policy names this service",
    )


def test_audience_without_request_grants_every_listed_scope(payments: Policy) -> None:
    assert payments.grant("billing-api", None, "ledger-api") == Grant(
        ("ledger:write", "ledger:read"), 900
    )


def test_audience_scope_listed_exactly_is_granted(payments: Policy) -> None:
    grant = payments.grant("billing-api", ["ledger:read"], "ledger-api")

    assert grant.scopes == ("ledger:read",)


@pytest.mark.parametrize(
    "scope",
    ["ledger:delete", "ledger:*", "secrets:read:payments/*", "admin"],
    ids=["unlisted", "wildcard-is-literal", "broker-scope", "admin"],
)
def test_audience_scope_not_listed_is_refused(payments: Policy, scope: str) -> None:
    error = refused(payments, "billing-api", ["ledger:read", scope], "ledger-api")

    assert error.refused == (scope,)
    assert error.message == (
        "requested scope 2 of 2 is not granted to this client for the requested "
        "audience"
    )


def test_an_audience_the_service_may_not_target_is_invalid_scope(
    payments: Policy,
) -> None:
    error = refused(payments, "billing-api", None, "hr-api")

    assert error.message == (
        "no scope for the requested audience is granted to this client"
    )


def test_a_malformed_audience_is_invalid_request(payments: Policy) -> None:
    with pytest.raises(InvalidRequest) as caught:
        payments.grant("billing-api", None, "CANARY-7f3a Bad")

    assert not isinstance(caught.value, InvalidScope)
    assert "CANARY-7f3a" not in caught.value.message


# explain


def test_explain_names_the_granting_document_and_rule(payments: Policy) -> None:
    decision = payments.explain("billing-api", "secrets:read:payments/stripe-key")

    assert decision == Decision(
        True, "payments", BILLING_READ, "granted by a read rule"
    )


def test_explain_names_the_deny_that_wins(payments: Policy) -> None:
    decision = payments.explain("billing-api", "secrets:read:payments/root-*")

    assert (decision.allowed, decision.rule) == (False, BILLING_DENY)


def test_explain_says_when_a_deny_still_applies_inside_a_grant(
    payments: Policy,
) -> None:
    decision = payments.explain("billing-api", "secrets:read:payments/*")

    assert decision.allowed
    assert decision.reason == (
        "granted by a read rule; the names a deny rule matches stay denied"
    )


def test_explain_names_a_rule_that_grants_only_part(payments: Policy) -> None:
    decision = payments.explain("billing-api", "secrets:read:payments/**")

    assert decision == Decision(
        False, "payments", BILLING_READ, "this rule grants only part of it"
    )


def test_explain_says_no_rule_grants_it(payments: Policy) -> None:
    decision = payments.explain("billing-api", "secrets:write:payments/stripe-key")

    assert decision == Decision(False, None, None, "no rule grants it")


def test_explain_names_the_admin_rule(payments: Policy) -> None:
    decision = payments.explain("ops-console", "admin")

    assert (decision.allowed, decision.document, decision.rule) == (
        True,
        "payments",
        "services.ops-console.admin = true",
    )


def test_explain_finds_an_audience_scope(payments: Policy) -> None:
    decision = payments.explain("billing-api", "ledger:read")

    assert decision == Decision(
        True,
        "payments",
        "services.billing-api.tokens[0].scopes[1] = ledger:read",
        "listed for tokens to audience 'ledger-api'",
    )


def test_explain_of_a_service_no_policy_names(payments: Policy) -> None:
    decision = payments.explain("stranger", "admin")

    assert decision == Decision(False, None, None, "no policy names this service")


@pytest.mark.parametrize(
    "scope",
    ["secrets:delete:payments/*", "secrets:read:payments//x", "secrets:read", "a b"],
    ids=["unknown-action", "malformed-pattern", "no-pattern", "space"],
)
def test_explain_refuses_a_malformed_scope(payments: Policy, scope: str) -> None:
    with pytest.raises(InvalidRequest):
        payments.explain("billing-api", scope)


# diff


def test_diff_lists_grants_added_and_removed_per_service(payments: Policy) -> None:
    changed = policy(
        payments="""\
        services:
          billing-api:
            secrets:
              read: ["payments/*", "ledger/*"]
            tokens:
              - audience: ledger-api
                scopes: ["ledger:write"]
            max_ttl: 1h
          ops-console:
            admin: true
            secrets:
              deny: ["payments/root-*"]
        """
    )

    assert diff(payments, changed) == {
        "billing-api": ServiceChange(
            added=("max_ttl:1h", "secrets:read:ledger/*"),
            removed=(
                "deny:payments/root-*",
                "max_ttl:15m",
                "tokens:ledger-api:ledger:read",
            ),
        )
    }


def test_diff_of_a_new_and_a_removed_service() -> None:
    old = policy(payments="services: {a: {admin: true}}")
    new = policy(payments="services: {b: {secrets: {rotate: ['x/**']}}}")

    assert diff(old, new) == {
        "a": ServiceChange(added=(), removed=("admin",)),
        "b": ServiceChange(added=("secrets:rotate:x/**",), removed=()),
    }


def test_diff_of_the_same_policy_is_empty(payments: Policy) -> None:
    assert diff(payments, policy(payments=PAYMENTS)) == {}
