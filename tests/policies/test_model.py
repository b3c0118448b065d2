"""One policy document: its format, and the problems it reports."""

from __future__ import annotations

import json
import textwrap

import pytest

from policies.match import Pattern
from policies.model import (
    RESERVED_DOCUMENT_NAMES,
    PolicyDocument,
    Retire,
    parse_document,
    validate_document_name,
)
from service.errors import InvalidRequest, PolicyInvalid

CANARY = "CANARY-7f3a"

SPEC_EXAMPLE = """\
services:
  billing-api:
    secrets:
      read: ["payments/*"]            # * is one path segment, ** any depth
      deny: ["payments/root-*"]
    tokens:                           # service-to-service tokens it may obtain
      - audience: ledger-api
        scopes: ["ledger:write"]
    max_ttl: 15m
  ops-console:
    admin: true
secrets:
  payments/stripe-key:
    backend: aws-main                 # a backend of this environment's configuration
    path: prod/payments/stripe        # where it lives inside that backend
    rotation:
      every: 30d                      # or cron: "0 3 * * 1" (UTC)
      generator: {type: random, length: 48}
      grace: 24h                      # the previous version stays readable this long
"""


def parse(text: str, media_type: str = "application/yaml") -> PolicyDocument:
    return parse_document("payments", textwrap.dedent(text), media_type)


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyInvalid) as caught:
        parse(text)
    return caught.value.problems


def test_spec_example_grants_billing_api_its_patterns() -> None:
    billing = parse(SPEC_EXAMPLE).services["billing-api"]

    assert billing.secrets.read == (Pattern.parse("payments/*"),)
    assert billing.secrets.deny == (Pattern.parse("payments/root-*"),)
    assert billing.secrets.write == ()


def test_spec_example_keeps_max_ttl_as_seconds() -> None:
    assert parse(SPEC_EXAMPLE).services["billing-api"].max_ttl == 900


def test_spec_example_lists_audience_scopes() -> None:
    (token,) = parse(SPEC_EXAMPLE).services["billing-api"].tokens

    assert (token.audience, token.scopes) == ("ledger-api", ("ledger:write",))


def test_spec_example_makes_ops_console_admin() -> None:
    services = parse(SPEC_EXAMPLE).services

    assert services["ops-console"].admin is True
    assert services["billing-api"].admin is False


def test_spec_example_declares_the_secret_and_its_rotation() -> None:
    declaration = parse(SPEC_EXAMPLE).secrets["payments/stripe-key"]
    rotation = declaration.rotation

    assert (declaration.backend, declaration.path) == (
        "aws-main",
        "prod/payments/stripe",
    )
    assert rotation is not None
    assert (rotation.every, rotation.cron, rotation.grace) == (2_592_000, None, 86_400)
    assert (rotation.generator.type, rotation.generator.params) == (
        "random",
        {"length": 48},
    )
    assert rotation.retire is Retire.AFTER_GRACE


def test_rotation_optional_fields_are_read() -> None:
    document = parse(
        """
        secrets:
          payments/stripe-key:
            rotation:
              cron: "0 3 * * 1"
              generator: {type: random}
              grace: 24h
              window: 1h
              jitter: 5m
              retire: when-unused
              max_grace: 7d
        """
    )
    rotation = document.secrets["payments/stripe-key"].rotation

    assert rotation is not None
    assert (rotation.cron, rotation.window, rotation.jitter, rotation.max_grace) == (
        "0 3 * * 1",
        3_600,
        300,
        604_800,
    )
    assert rotation.retire is Retire.WHEN_UNUSED


def test_json_and_yaml_give_the_same_document() -> None:
    from_yaml = parse(SPEC_EXAMPLE)
    as_json = json.dumps(from_yaml.model_dump(mode="json"))

    assert parse(as_json, "application/json") == from_yaml


def test_dumped_durations_read_back_as_written() -> None:
    dumped = parse(SPEC_EXAMPLE).model_dump(mode="json")

    assert dumped["services"]["billing-api"]["max_ttl"] == "15m"
    assert dumped["secrets"]["payments/stripe-key"]["rotation"]["every"] == "30d"


def test_a_declared_secret_needs_no_backend_nor_path() -> None:
    declaration = parse("secrets: {payments/key: {}}").secrets["payments/key"]

    assert (declaration.backend, declaration.path, declaration.rotation) == (
        None,
        None,
        None,
    )


def test_empty_document_is_valid_and_grants_nothing() -> None:
    assert parse("") == PolicyDocument()
    assert parse("").services == {}


def test_generator_repr_names_parameters_without_their_values() -> None:
    document = parse(
        f"""
        secrets:
          payments/key:
            rotation:
              every: 1d
              grace: 1h
              generator: {{type: static, value: {CANARY}}}
        """
    )
    rotation = document.secrets["payments/key"].rotation

    assert rotation is not None
    assert CANARY not in repr(rotation)
    assert "value" in repr(rotation.generator)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            f"services: {{billing-api: {{max_ttl: {CANARY}}}}}",
            "services.billing-api.max_ttl: expected a duration such as 15m, 24h or 30d",
        ),
        (
            "services: {billing-api: {max_ttl: 900}}",
            "services.billing-api.max_ttl: expected a duration such as 15m, 24h or 30d",
        ),
        (
            f"services: {{billing-api: {{secrets: {{reed: [{CANARY}]}}}}}}",
            "services.billing-api.secrets: key 1 is not a known field; "
            "allowed: read, write, rotate, revoke, deny",
        ),
        (
            f"services: {{billing-api: {{admin: {CANARY}}}}}",
            "services.billing-api.admin: expected true or false",
        ),
        (
            "services: {billing-api: {admin: 'true'}}",
            "services.billing-api.admin: expected true or false",
        ),
        (
            f"services: {{billing-api: {{secrets: {{deny: [a, '{CANARY}//x']}}}}}}",
            "services.billing-api.secrets.deny[1]: "
            "a pattern must not contain an empty segment ('//')",
        ),
        (
            f"services: {{billing-api: {{secrets: {{read: '{CANARY}/*'}}}}}}",
            "services.billing-api.secrets.read: expected a list",
        ),
        (
            f"services: {{{CANARY}: {{admin: true}}}}",
            "services: invalid key: a service name must be 1 to 63 lower-case "
            "letters, digits or '-', starting with a letter or digit",
        ),
        (
            "services: {billing-api: {tokens: [{audience: ledger-api, "
            "scopes: [admin]}]}}",
            "services.billing-api.tokens[0].scopes[0]: "
            "admin and secrets: scopes cannot be given to an audience",
        ),
        (
            "services: {billing-api: {tokens: [{audience: ledger-api, scopes: []}]}}",
            "services.billing-api.tokens[0].scopes: must not be empty",
        ),
        (
            "services: {billing-api: {tokens: [{scopes: [a]}]}}",
            "services.billing-api.tokens[0].audience: required field is missing",
        ),
        (
            f"secrets: {{{CANARY}/rotate: {{}}}}",
            "secrets: invalid key: "
            "a secret name must not end in rotate, refresh, compromise, consumers "
            "or versions",
        ),
        (
            f"secrets: {{payments/key: {{value: {CANARY}}}}}",
            "secrets.payments/key: key 1 is not a known field; "
            "allowed: backend, path, rotation",
        ),
        (
            "secrets: {payments/key: {rotation: "
            "{every: 1d, cron: '0 3 * * 1', generator: {type: random}, grace: 1h}}}",
            "secrets.payments/key.rotation: give exactly one of every and cron",
        ),
        (
            "secrets: {payments/key: {rotation: "
            "{generator: {type: random}, grace: 1h}}}",
            "secrets.payments/key.rotation: give exactly one of every and cron",
        ),
        (
            "secrets: {payments/key: {rotation: "
            f"{{cron: '{CANARY} * *', generator: {{type: random}}, grace: 1h}}}}}}",
            "secrets.payments/key.rotation.cron: "
            "expected a cron expression of 5 fields, such as 0 3 * * 1",
        ),
        (
            "secrets: {payments/key: {rotation: "
            f"{{every: 1d, generator: {{length: 3}}, grace: 1h, retire: {CANARY}}}}}}}",
            "secrets.payments/key.rotation.retire: "
            "expected 'after-grace' or 'when-unused'",
        ),
        (
            "secrets: {payments/key: {rotation: "
            "{every: 1d, generator: {length: 3}, grace: 1h}}}",
            "secrets.payments/key.rotation.generator.type: required field is missing",
        ),
        (
            "secrets: {payments/key: {rotation: "
            "{every: 1d, generator: {type: random}, grace: 1d, max_grace: 1h}}}",
            "secrets.payments/key.rotation: max_grace must be at least grace",
        ),
        (
            f"secrets: {{payments/key: {{backend: '{CANARY} x'}}}}",
            "secrets.payments/key.backend: "
            "expected a backend name of letters, digits, '_' or '-'",
        ),
        (
            f"other: {CANARY}",
            "(top level): key 1 is not a known field; allowed: services, secrets",
        ),
        (
            f"7: {CANARY}",
            "(top level): keys must be strings",
        ),
    ],
    ids=[
        "max-ttl-not-a-duration",
        "max-ttl-without-unit",
        "misspelled-field",
        "admin-not-a-boolean",
        "admin-a-string",
        "malformed-deny-pattern",
        "patterns-not-a-list",
        "bad-service-name",
        "broker-scope-for-an-audience",
        "audience-without-scopes",
        "token-without-audience",
        "reserved-secret-name",
        "secret-value-pasted",
        "both-every-and-cron",
        "neither-every-nor-cron",
        "cron-without-five-fields",
        "unknown-retire",
        "generator-without-type",
        "max-grace-below-grace",
        "bad-backend-name",
        "unknown-top-level-field",
        "number-as-key",
    ],
)
def test_problem_names_document_field_and_what_is_wrong(
    text: str, problem: str
) -> None:
    assert f"policy 'payments': {problem}" in problems(text)


def test_problems_never_contain_the_rejected_values() -> None:
    found = problems(
        f"""
        services:
          billing-api:
            max_ttl: {CANARY}
            admin: {CANARY}
            secrets:
              reed: {CANARY}
              read: ["{CANARY}//x", 7]
            tokens:
              - audience: {CANARY}
                scopes: ["{CANARY} x"]
          {CANARY}:
            admin: {CANARY}
        secrets:
          {CANARY}/versions:
            backend: {CANARY}!
            path: "{CANARY}\\x01"
            rotation: {{every: {CANARY}, cron: {CANARY}, generator: {CANARY}}}
        """
    )

    assert len(found) >= 12
    assert [problem for problem in found if CANARY in problem] == []


def test_value_errors_under_an_invalid_key_hide_the_key() -> None:
    found = problems(f"services: {{{CANARY}: {{admin: 1}}}}")

    assert (
        "policy 'payments': services.<invalid key>.admin: expected true or false"
        in found
    )


def test_an_unknown_key_is_not_shown_but_placed() -> None:
    """Even a key that reads like a field name may be a pasted secret."""
    key = f"admin-{CANARY}"
    found = problems(f"services: {{billing-api: {{max_ttl: 5m, {key}: 1}}}}")

    assert found == [
        "policy 'payments': services.billing-api: key 2 is not a known field; "
        "allowed: admin, secrets, tokens, max_ttl, rate_limit"
    ]


def test_an_unknown_key_that_is_not_a_field_name_is_not_shown() -> None:
    key = f'"reed\\n{CANARY}"'
    found = problems(f"services: {{billing-api: {{{key}: 1}}}}")

    assert found == [
        "policy 'payments': services.billing-api: key 1 is not a known field; "
        "allowed: admin, secrets, tokens, max_ttl, rate_limit"
    ]


def test_one_problem_is_the_message_itself() -> None:
    with pytest.raises(PolicyInvalid) as caught:
        parse("services: {billing-api: {max_ttl: 0s}}")

    assert caught.value.message == caught.value.problems[0]
    assert caught.value.message == (
        "policy 'payments': services.billing-api.max_ttl: "
        "a duration must be longer than zero"
    )


def test_several_problems_are_counted_in_the_message() -> None:
    with pytest.raises(PolicyInvalid) as caught:
        parse("services: {billing-api: {max_ttl: x, admin: x}}")

    assert caught.value.message == "policy 'payments': 2 problems"


def test_yaml_syntax_error_is_policy_invalid_naming_the_line() -> None:
    with pytest.raises(PolicyInvalid) as caught:
        parse(f"services:\n  billing-api: [{CANARY}\n")

    assert caught.value.problems == ["policy 'payments': line 3: not valid YAML"]


def test_top_level_list_is_policy_invalid() -> None:
    with pytest.raises(PolicyInvalid) as caught:
        parse("- services\n")

    assert caught.value.message == "policy 'payments': the top level must be a mapping"


@pytest.mark.parametrize(
    "name", ["", "../etc", "a b", "x" * 129, f"{CANARY}'"], ids=repr
)
def test_document_name_is_checked_without_being_repeated(name: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_document(name, "", "application/yaml")

    assert not isinstance(caught.value, PolicyInvalid)
    assert CANARY not in caught.value.message


@pytest.mark.parametrize("name", sorted(RESERVED_DOCUMENT_NAMES))
def test_a_name_an_endpoint_takes_cannot_name_a_document(name: str) -> None:
    """`explain` would be stored but never read back: GET policies/explain is
    the explain endpoint."""
    with pytest.raises(ValueError, match="cannot be named"):
        validate_document_name(name)


def test_a_document_name_may_contain_a_reserved_one() -> None:
    """Only the exact name is taken: `explain-rules` is a name like any."""
    validate_document_name("explain-rules")
