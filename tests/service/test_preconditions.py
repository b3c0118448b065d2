"""Reading an If-Match header into the precondition of a secret write."""

from __future__ import annotations

import pytest

from service.errors import InvalidRequest
from service.preconditions import IfMatch, parse_if_match


@pytest.mark.parametrize(
    ("header", "versions"),
    [
        pytest.param('"3"', {"3"}, id="quoted"),
        pytest.param("3", {"3"}, id="bare"),
        pytest.param('"1", "2"', {"1", "2"}, id="list"),
        pytest.param('"1",2 ,\t"3"', {"1", "2", "3"}, id="mixed-list"),
        pytest.param('"a,b"', {"a,b"}, id="comma-inside-quotes"),
        pytest.param("-1", {"-1"}, id="negative"),
        pytest.param("abc", {"abc"}, id="bare-word"),
        pytest.param('""', {""}, id="empty-quotes"),
        pytest.param(
            '"6d3c1b0e-8f64-4c4e-9a53-4a3c0f1d2e71"',
            {"6d3c1b0e-8f64-4c4e-9a53-4a3c0f1d2e71"},
            id="uuid",
        ),
    ],
)
def test_tags_are_read_as_the_versions_they_name(
    header: str, versions: set[str]
) -> None:
    """Quoted or bare, alone or listed: each tag is a version, as text."""
    assert parse_if_match(header) == IfMatch(frozenset(versions))


def test_a_star_matches_any_current_version() -> None:
    """RFC 9110: `*` holds when the secret has a current version at all."""
    precondition = parse_if_match(" * ")

    assert precondition is not None
    assert precondition.matches("7") and precondition.single is None


def test_a_list_matches_any_of_its_versions() -> None:
    """A list holds when the current version is one of its entries."""
    precondition = parse_if_match('"1", "2"')

    assert precondition is not None
    assert [precondition.matches(v) for v in ("1", "2", "3")] == [True, True, False]


def test_no_header_is_no_precondition() -> None:
    assert parse_if_match(None) is None


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("", id="empty"),
        pytest.param('W/"1"', id="weak"),
        pytest.param('"1", W/"2"', id="weak-in-a-list"),
        pytest.param('"', id="one-quote"),
        pytest.param('"2', id="unterminated"),
        pytest.param("\xef\xbc\x92", id="fullwidth-digit-as-latin-1"),
        pytest.param("1 2", id="two-words"),
        pytest.param('"1",', id="trailing-comma"),
        pytest.param('"1", *', id="star-in-a-list"),
        pytest.param('"a b"', id="space-inside-quotes"),
    ],
)
def test_an_unreadable_header_is_refused(header: str) -> None:
    """What is no tag at all is 400, never read some lax way."""
    with pytest.raises(InvalidRequest):
        parse_if_match(header)
