"""Secret names and the patterns that grant them."""

from __future__ import annotations

import pytest

from policies.match import Pattern, is_secret_name, validate_secret_name

CANARY = "CANARY-7f3a"


def pattern(text: str) -> Pattern:
    return Pattern.parse(text)


def test_one_star_never_matches_a_sibling_prefix() -> None:
    assert not pattern("payments/*").matches("payments-old/x")


def test_one_star_never_matches_a_deeper_name() -> None:
    assert not pattern("payments/*").matches("payments/a/b")


@pytest.mark.parametrize(
    ("text", "name", "expected"),
    [
        ("payments/*", "payments/stripe-key", True),
        ("payments/*", "payments", False),
        ("payments/root-*", "payments/root-key", True),
        ("payments/root-*", "payments/stripe-key", False),
        ("payments/*-key", "payments/stripe-key", True),
        ("*/key", "payments/key", True),
        ("*/key", "key", False),
        ("payments/**", "payments", True),
        ("payments/**", "payments/a", True),
        ("payments/**", "payments/a/b/c", True),
        ("payments/**", "payments-old/a", False),
        ("**/key", "key", True),
        ("**/key", "a/b/c/key", True),
        ("**/key", "a/b/c/key2", False),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**/b", "a/x/y/c", False),
        ("**", "anything/at/all", True),
        ("a.b/c", "aXb/c", False),
        ("a.b/c", "a.b/c", True),
        ("payments/stripe-key", "payments/stripe-key", True),
        ("payments/stripe-key", "payments/stripe-key2", False),
    ],
    ids=lambda value: str(value),
)
def test_pattern_matches_names_segment_by_segment(
    text: str, name: str, expected: bool
) -> None:
    assert pattern(text).matches(name) is expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "/payments/*",
        "payments/",
        "payments//key",
        "payments/**x",
        "payments/x**",
        "***",
        "payments/?",
        "payments/[ab]",
        "payments/a+b",
        "payments key",
        "payments/./key",
        "payments/../key",
        "a/**/**/b",
        "a" * 257,
        "payments/*a*b*",
        "**/a/**/b/**",
    ],
    ids=[
        "empty",
        "leading-slash",
        "trailing-slash",
        "empty-segment",
        "double-star-with-suffix",
        "double-star-with-prefix",
        "triple-star",
        "question-mark",
        "character-class",
        "plus-sign",
        "space",
        "dot-segment",
        "dot-dot-segment",
        "double-star-twice",
        "too-long",
        "three-stars-in-a-segment",
        "three-double-stars",
    ],
)
def test_pattern_parse_refuses_malformed_text(text: str) -> None:
    with pytest.raises(ValueError):
        Pattern.parse(text)


@pytest.mark.parametrize(
    "text",
    [f"{CANARY}/**x", f"/{CANARY}", f"{CANARY}//x", f"{CANARY} x"],
    ids=["double-star", "leading-slash", "empty-segment", "space"],
)
def test_pattern_errors_do_not_repeat_the_text(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        Pattern.parse(text)

    assert CANARY not in str(caught.value)


def test_patterns_with_the_same_text_are_equal_and_hash_alike() -> None:
    assert pattern("payments/*") == pattern("payments/*")
    assert len({pattern("payments/*"), pattern("payments/*")}) == 1


def test_pattern_shows_its_text() -> None:
    assert str(pattern("payments/*")) == "payments/*"
    assert repr(pattern("payments/*")) == "Pattern(text='payments/*')"


@pytest.mark.parametrize(
    ("wide", "narrow", "expected"),
    [
        ("payments/*", "payments/stripe-key", True),
        ("payments/*", "payments/root-*", True),
        ("payments/*", "payments/**", False),
        ("payments/*", "payments-old/*", False),
        ("payments/root-*", "payments/*", False),
        ("payments/*key", "payments/*-key", True),
        ("payments/*-key", "payments/*key", False),
        ("**", "payments/**", True),
        ("**", "a/*/b", True),
        ("payments/**", "payments/*/x", True),
        ("payments/**", "payments", True),
        ("payments/**", "payments/**", True),
        ("payments/**", "**", False),
        ("a/**/b", "a/x/**/b", True),
        ("a/**/b", "a/**", False),
        ("**/key", "payments/**/key", True),
        ("*/**", "**/a*", True),
        ("**/*", "a/**", True),
        ("*/**", "**", False),
    ],
    ids=[
        "star-covers-a-name",
        "star-covers-a-partial-star",
        "star-does-not-cover-any-depth",
        "star-does-not-cover-a-sibling-prefix",
        "partial-star-does-not-cover-star",
        "wider-suffix-covers-narrower",
        "narrower-suffix-does-not-cover-wider",
        "double-star-covers-everything",
        "double-star-covers-inner-star",
        "prefix-depth-covers-star-then-literal",
        "prefix-depth-covers-the-prefix-itself",
        "pattern-covers-itself",
        "prefix-depth-does-not-cover-everything",
        "inner-depth-covers-nested-depth",
        "inner-depth-does-not-cover-open-end",
        "leading-depth-covers-prefixed-depth",
        "star-then-depth-covers-depth-then-star",
        "shown-from-the-right",
        "conservative-when-only-empty-names-differ",
    ],
)
def test_covers_holds_only_when_every_name_is_included(
    wide: str, narrow: str, expected: bool
) -> None:
    assert pattern(wide).covers(pattern(narrow)) is expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("payments/*", "payments/root-*", True),
        ("payments/*", "payments-old/*", False),
        ("payments/*", "payments/a/b", False),
        ("payments/**", "**/key", True),
        ("payments/*/x", "payments/**", True),
        ("a*", "*b", True),
        ("a*/x", "b*/x", False),
        ("*-key", "root-*", True),
        ("*-key", "*-token", False),
        ("a/**/b", "a/c", False),
        ("x/*", "x", False),
        ("x/**", "x", True),
        ("**", "x", True),
    ],
    ids=[
        "star-and-partial-star",
        "sibling-prefixes",
        "star-and-deeper-name",
        "prefix-depth-and-suffix-depth",
        "star-inside-depth",
        "prefix-and-suffix-stars",
        "different-prefixes",
        "suffix-and-prefix-agree",
        "different-suffixes",
        "inner-depth-and-wrong-end",
        "star-needs-a-segment",
        "depth-may-be-empty",
        "everything-and-one-name",
    ],
)
def test_overlaps_holds_when_some_name_matches_both(
    a: str, b: str, expected: bool
) -> None:
    assert pattern(a).overlaps(pattern(b)) is expected
    assert pattern(b).overlaps(pattern(a)) is expected


@pytest.mark.parametrize(
    "name",
    ["payments/stripe-key", "a", "A.b_c-d/e", "rotate/key", "a/" * 127 + "bc"],
    ids=["path", "one-segment", "every-character-kind", "reserved-not-last", "256"],
)
def test_validate_secret_name_accepts_valid_names(name: str) -> None:
    validate_secret_name(name)

    assert is_secret_name(name)


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("", "must not be empty"),
        ("a" * 257, "at most 256 characters"),
        ("/payments/key", "must not start or end with '/'"),
        ("payments/key/", "must not start or end with '/'"),
        ("payments//key", "contain '//'"),
        ("payments/*", "may only contain"),
        ("payments/kéy", "may only contain"),
        ("payments/../key", "'.' or '..' segment"),
        ("payments/./key", "'.' or '..' segment"),
        ("payments/key/rotate", "must not end in rotate"),
        ("payments/key/refresh", "must not end in rotate"),
        ("payments/key/compromise", "must not end in rotate"),
        ("payments/key/consumers", "must not end in rotate"),
        ("payments/key/versions", "must not end in rotate"),
    ],
    ids=[
        "empty",
        "too-long",
        "leading-slash",
        "trailing-slash",
        "empty-segment",
        "wildcard",
        "non-ascii",
        "dot-dot",
        "dot",
        "ends-in-rotate",
        "ends-in-refresh",
        "ends-in-compromise",
        "ends-in-consumers",
        "ends-in-versions",
    ],
)
def test_validate_secret_name_names_the_rule_broken(name: str, rule: str) -> None:
    with pytest.raises(ValueError) as caught:
        validate_secret_name(name)

    assert rule in str(caught.value)
    assert not is_secret_name(name)


def test_validate_secret_name_error_does_not_repeat_the_name() -> None:
    with pytest.raises(ValueError) as caught:
        validate_secret_name(f"{CANARY}/rotate")

    assert CANARY not in str(caught.value)
