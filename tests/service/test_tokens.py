"""Issuing and verifying tokens with a clock the tests move."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
import structlog.testing
from sqlalchemy import Engine, event

from service.crypto import KeyEncryptionKey
from service.errors import AuthenticationFailed
from service.key_schedule import SigningKeySettings
from service.keys import KeyRing
from service.tokens import TokenAuthority
from tests.service.conftest import FakeClock

ISSUER = "https://broker.test/v1/dev"


@pytest.fixture
def authority(
    engine: Engine, kek: KeyEncryptionKey, clock: FakeClock
) -> TokenAuthority:
    keyring = KeyRing("dev", engine, kek, clock)
    keyring.load()
    return TokenAuthority("dev", ISSUER, keyring, clock)


def issue(authority: TokenAuthority, ttl: int = 300) -> str:
    return authority.issue(
        "billing-api", ["secrets:read:payments/*"], audience=None, ttl=ttl
    ).access_token


def test_issued_token_verifies_to_its_service_and_scopes(
    authority: TokenAuthority,
) -> None:
    principal = authority.verify(issue(authority))

    assert principal.service == "billing-api"
    assert principal.may("read", "payments/stripe")
    assert not principal.may("read", "payments-old/stripe")
    assert not principal.may("write", "payments/stripe")


def test_token_is_refused_once_expired(
    authority: TokenAuthority, clock: FakeClock
) -> None:
    token = issue(authority, ttl=60)
    authority.verify(token)

    clock.advance(61)

    with pytest.raises(AuthenticationFailed):
        authority.verify(token)


def test_token_of_another_environment_is_refused(
    engine: Engine, kek: KeyEncryptionKey, clock: FakeClock, authority: TokenAuthority
) -> None:
    other_ring = KeyRing("prod", engine, kek, clock)
    other_ring.load()
    other = TokenAuthority("prod", "https://broker.test/v1/prod", other_ring, clock)

    with pytest.raises(AuthenticationFailed):
        authority.verify(issue(other))


def test_every_refusal_has_the_same_message(
    authority: TokenAuthority, clock: FakeClock
) -> None:
    expired = issue(authority, ttl=10)
    clock.advance(11)
    messages = set()
    for token in (expired, "garbage", issue(authority)[:-4] + "AAAA", ""):
        with pytest.raises(AuthenticationFailed) as caught:
            authority.verify(token)
        messages.add(str(caught.value))

    assert messages == {"the bearer token is not valid"}


def test_token_lifetime_never_outlasts_its_signing_key(
    engine: Engine, kek: KeyEncryptionKey, clock: FakeClock
) -> None:
    """Case C12: with no new key to be had, exp is clamped to the key's end."""
    never_early = SigningKeySettings(renew_before_seconds=0, overlap_seconds=0)
    keyring = KeyRing("dev", engine, kek, clock, never_early)
    keyring.load()
    authority = TokenAuthority("dev", ISSUER, keyring, clock)
    key = authority.keyring.signing_key()
    clock.current = key.not_after_timestamp - 30

    issued = authority.issue("svc", ["admin"], audience=None, ttl=300)

    claims = jwt.decode(issued.access_token, options={"verify_signature": False})
    assert claims["exp"] <= key.not_after_timestamp
    assert issued.expires_in == claims["exp"] - claims["iat"]


def _forge(header: dict[str, object], payload: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        raw = json.dumps(data).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    return f"{part(header)}.{part(payload)}.c2ln"


@pytest.mark.parametrize(
    "kid",
    [
        pytest.param("../../../../dev/null", id="path"),
        pytest.param("k1' OR '1'='1", id="sql"),
        pytest.param("k" * 10_000, id="10KB"),
        pytest.param("k1\x00", id="nul"),
        pytest.param(" k1", id="leading-space"),
        pytest.param(None, id="missing"),
    ],
)
def test_hostile_kid_is_refused_without_touching_the_store(
    authority: TokenAuthority, kid: str | None, engine: Engine
) -> None:
    """Case C14: a kid is looked up in memory only."""
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    token = _forge({"alg": "HS256", "kid": kid}, {"sub": "x"})

    with pytest.raises(AuthenticationFailed):
        authority.verify(token)
    assert statements == []


def test_alg_none_is_refused(authority: TokenAuthority) -> None:
    kid = authority.keyring.signing_key().kid
    token = _forge({"alg": "none", "kid": kid}, {"sub": "x"})[:-4]

    with pytest.raises(AuthenticationFailed):
        authority.verify(token)


def test_key_near_its_end_is_replaced_and_stays_published(
    authority: TokenAuthority, clock: FakeClock
) -> None:
    old = authority.keyring.signing_key()
    clock.current = old.not_after_timestamp - 3600

    token = issue(authority)

    assert jwt.get_unverified_header(token)["kid"] != old.kid
    published = {key["kid"] for key in authority.keyring.jwks()["keys"]}
    assert old.kid in published
    assert authority.verify(token).service == "billing-api"


def _signed(
    authority: TokenAuthority,
    now: int,
    *,
    header: dict[str, object] | None = None,
    **changes: object,
) -> str:
    """A token signed with the environment's real key, its claims changed."""
    key = authority.keyring.signing_key()
    claims: dict[str, object] = {
        "iss": ISSUER, "sub": "billing-api", "aud": ISSUER, "env": "dev",
        "scope": "secrets:read:payments/*", "iat": now, "nbf": now,
        "exp": now + 300, "jti": "forged-jti",
    }  # fmt: skip
    claims.update(changes)
    headers = {"kid": key.kid, "typ": "at+jwt", **(header or {})}
    return jwt.encode(claims, key.private_key, algorithm="EdDSA", headers=headers)


def test_a_token_signed_with_the_real_key_verifies(
    authority: TokenAuthority, clock: FakeClock
) -> None:
    """The helper's tokens verify, so each refusal below is about its change."""
    token = _signed(authority, int(clock.now()))

    assert authority.verify(token).service == "billing-api"


# What each lax token changes, given the time now and when the signing key ends.
LAX_TOKENS: dict[str, Callable[[int, int], dict[str, Any]]] = {
    "exp-as-string": lambda now, _end: {"exp": str(now + 300)},
    "nbf-as-string": lambda now, _end: {"nbf": str(now)},
    "iat-as-string": lambda now, _end: {"iat": str(now)},
    "exp-as-float": lambda now, _end: {"exp": now + 300.5},
    "iat-as-boolean": lambda _now, _end: {"iat": True},
    "iat-an-hour-ahead": lambda now, _end: {"iat": now + 3600},
    "exp-after-the-key-ends": lambda _now, end: {"exp": end + 60},
    "typ-missing": lambda _now, _end: {"header": {"typ": None}},
    "typ-jwt": lambda _now, _end: {"header": {"typ": "JWT"}},
}


@pytest.mark.parametrize("kind", list(LAX_TOKENS))
def test_a_token_with_a_lax_claim_is_refused_like_any_other(
    authority: TokenAuthority, clock: FakeClock, kind: str
) -> None:
    """Time claims are integers, iat not ahead, exp within the key, typ at+jwt;
    the caller sees the one message, the log the reason."""
    now, end = int(clock.now()), int(authority.keyring.signing_key().ends)
    token = _signed(authority, now, **LAX_TOKENS[kind](now, end))

    with (
        structlog.testing.capture_logs() as logs,
        pytest.raises(AuthenticationFailed) as caught,
    ):
        authority.verify(token)

    assert str(caught.value) == "the bearer token is not valid"
    [rejected] = [entry for entry in logs if entry["event"] == "token_rejected"]
    assert rejected["reason"] and token not in str(rejected)


def test_typ_is_compared_without_case(
    authority: TokenAuthority, clock: FakeClock
) -> None:
    """RFC 9068's `application/at+jwt` and any case of it are the same type."""
    token = _signed(authority, int(clock.now()), header={"typ": "Application/AT+JWT"})

    assert authority.verify(token).service == "billing-api"
