"""The in-memory revocation set: what it refuses, what it forgets, and its cost."""

from __future__ import annotations

import math

import pytest

from service.revocation_set import Kind, Revocation, RevocationSet
from service.tokens import Principal

NOW = 1_800_000_000.0


def principal(
    jti: str = "t-1", service: str = "billing-api", kid: str = "k1", iat: float = NOW
) -> Principal:
    return Principal(
        env="dev", service=service, jti=jti, scopes=(), expires_at=iat + 300,
        kid=kid, issued_at=iat,
    )  # fmt: skip


def token(jti: str, expires_at: float = NOW + 300) -> Revocation:
    return Revocation("dev", Kind.TOKEN, jti, NOW, expires_at)


def service(
    name: str = "billing-api",
    at: float = NOW,
    *,
    disabled: bool = False,
    revision: int = 1,
    expires_at: float = NOW + 3600,
) -> Revocation:
    return Revocation("dev", Kind.SERVICE, name, at, expires_at, disabled, revision)


class CountingStr(str):
    """A jti that counts how often a lookup hashes or compares it."""

    touches = 0

    def __hash__(self) -> int:
        CountingStr.touches += 1
        return super().__hash__()

    def __eq__(self, other: object) -> bool:
        CountingStr.touches += 1
        return super().__eq__(other)


def test_revoked_jti_is_refused_and_other_tokens_stand() -> None:
    revoked = RevocationSet("dev")
    revoked.apply(token("t-1"))

    assert revoked.revoked(principal("t-1")) is Kind.TOKEN
    assert revoked.revoked(principal("t-2")) is None


def test_service_watermark_refuses_tokens_issued_in_or_before_its_second() -> None:
    revoked = RevocationSet("dev")
    revoked.apply(service(at=NOW + 0.7))

    assert revoked.revoked(principal(iat=NOW - 60)) is Kind.SERVICE
    assert revoked.revoked(principal(iat=NOW)) is Kind.SERVICE
    assert revoked.revoked(principal(iat=NOW + 1)) is None
    assert revoked.revoked(principal(service="ledger-api", iat=NOW)) is None


def test_new_token_of_a_revoked_service_waits_for_the_next_second() -> None:
    revoked = RevocationSet("dev")
    revoked.apply(service(at=NOW + 0.7))

    assert revoked.issuable_from("billing-api") == NOW + 1
    assert revoked.issuable_from("ledger-api") == 0.0


def test_disabled_service_refuses_every_token_even_new_ones() -> None:
    revoked = RevocationSet("dev")
    revoked.apply(service(disabled=True))

    assert revoked.disabled("billing-api")
    assert revoked.revoked(principal(iat=NOW + 86400)) is Kind.SERVICE
    assert revoked.issuable_from("billing-api") == math.inf


def test_an_older_state_of_a_service_never_replaces_a_newer_one() -> None:
    revoked = RevocationSet("dev")
    revoked.apply(service(at=NOW + 10, revision=2))

    changed = revoked.apply(service(at=NOW, disabled=True, revision=1))

    assert not changed
    assert not revoked.disabled("billing-api")


def test_enabling_moves_the_watermark_to_the_enable_time() -> None:
    revoked = RevocationSet("dev")
    revoked.apply(service(disabled=True, revision=1))

    revoked.apply(service(at=NOW + 30, revision=2))

    assert not revoked.disabled("billing-api")
    assert revoked.revoked(principal(iat=NOW + 30)) is Kind.SERVICE
    assert revoked.revoked(principal(iat=NOW + 31)) is None


def test_revoked_key_refuses_its_tokens_and_tells_the_key_ring_once() -> None:
    revoked = RevocationSet("dev")
    dropped: list[str] = []
    revoked.on_key_revoked = dropped.append
    entry = Revocation("dev", Kind.KEY, "k1", NOW, NOW + 86400)

    revoked.apply(entry)
    revoked.apply(entry)

    assert revoked.revoked(principal(kid="k1")) is Kind.KEY
    assert revoked.revoked(principal(kid="k2")) is None
    assert dropped == ["k1"]


def test_prune_forgets_tokens_once_expired_and_keeps_the_rest() -> None:
    revoked = RevocationSet("dev")
    revoked.apply(token("short", NOW + 60))
    revoked.apply(token("long", NOW + 3600))

    dropped = revoked.prune(NOW + 61 + 60)

    assert dropped == 1
    assert revoked.revoked(principal("short")) is None
    assert revoked.revoked(principal("long")) is Kind.TOKEN


def test_prune_keeps_a_disabled_service_past_its_expiry() -> None:
    revoked = RevocationSet("dev")
    revoked.apply(service("old", expires_at=NOW + 10))
    revoked.apply(service("off", expires_at=NOW + 10, disabled=True))

    revoked.prune(NOW + 3600)

    assert revoked.counts()["service"] == 1
    assert revoked.disabled("off")


def test_a_token_revoked_again_for_longer_is_kept_for_longer() -> None:
    revoked = RevocationSet("dev")
    revoked.apply(token("t-1", NOW + 60))
    revoked.apply(token("t-1", NOW + 7200))

    revoked.prune(NOW + 3600)

    assert revoked.revoked(principal("t-1")) is Kind.TOKEN


@pytest.mark.parametrize("held", [10, 100_000], ids=["10", "100k"])
def test_check_touches_no_other_entry_however_many_are_held(held: int) -> None:
    """O(1): the check hashes and compares a constant number of entries."""
    revoked = RevocationSet("dev")
    for number in range(held):
        revoked.apply(token(CountingStr(f"t-{number}")))
    CountingStr.touches = 0

    for number in range(50):
        revoked.revoked(principal(f"absent-{number}"))
    revoked.revoked(principal("t-7"))

    assert CountingStr.touches <= 2


def test_prune_with_nothing_expired_looks_at_no_token() -> None:
    """Pruning costs what it drops, not what the set holds."""
    revoked = RevocationSet("dev")
    for number in range(10_000):
        revoked.apply(token(CountingStr(f"t-{number}"), NOW + 3600))
    CountingStr.touches = 0

    revoked.prune(NOW + 60)

    assert CountingStr.touches == 0
