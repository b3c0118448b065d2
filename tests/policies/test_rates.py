"""Rates as policies write them: `100/s`, `600/m`, `1000/h`."""

from __future__ import annotations

import pytest

from policies.evaluate import Policy
from policies.model import parse_document
from policies.rates import Rate


@pytest.mark.parametrize(
    ("text", "per_second"),
    [("100/s", 100.0), ("600/m", 10.0), ("3600/h", 1.0), (" 5 / s ", 5.0)],
)
def test_a_rate_is_a_count_per_unit(text: str, per_second: float) -> None:
    assert Rate.parse(text).per_second == per_second


@pytest.mark.parametrize("text", ["0/s", "10", "10/d", "ten/s", "-1/s", "2000000/s"])
def test_a_malformed_rate_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="expected a rate"):
        Rate.parse(text)


def test_a_policy_caps_a_service_at_its_rate_limit() -> None:
    document = parse_document(
        "apps", "services:\n  app:\n    rate_limit: 50/s\n", "application/yaml"
    )

    policy = Policy.from_documents({"apps": document})

    assert str(policy.rate_limit("app")) == "50/s"


def test_the_strictest_of_several_documents_rate_limits_holds() -> None:
    loose = parse_document("a", "services:\n  app:\n    rate_limit: 100/s\n", "")
    strict = parse_document("b", "services:\n  app:\n    rate_limit: 600/m\n", "")

    policy = Policy.from_documents({"a": loose, "b": strict})

    assert str(policy.rate_limit("app")) == "600/m"


def test_a_rate_limit_change_shows_in_a_diff_as_a_statement() -> None:
    document = parse_document("a", "services:\n  app:\n    rate_limit: 5/s\n", "")

    assert "rate_limit:5/s" in Policy.from_documents({"a": document}).statements("app")
