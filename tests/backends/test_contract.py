"""The behaviours every backend shares, run against each one over a real server."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import pytest

from backends.base import ABSENT, SecretBackend, Stage
from service.errors import (
    PreconditionFailed,
    SecretNotFound,
    TokenBrokerError,
    VersionDisabled,
)
from service.sensitive import Sensitive

# Case C25: values that must come back byte-exact from every store.
EXACT_VALUES = [
    pytest.param(os.urandom(1024) + b"\x00\xff", True, id="random-bytes"),
    pytest.param(b"QUJD", True, id="bytes-that-look-like-base64"),
    pytest.param("pässwörd-é-🔐-密".encode(), False, id="non-ascii-text"),
    pytest.param(b"  lead/trail spaces\nand newline  ", False, id="whitespace"),
    pytest.param(b"%0A%3B]", False, id="percent-encoding"),
]


def write(backend: SecretBackend, path: str, value: bytes, **options: object) -> str:
    info = backend.write(path, Sensitive(value), binary=False, **options)  # type: ignore[arg-type]
    return info.version


@pytest.mark.parametrize(("value", "binary"), EXACT_VALUES)
def test_value_round_trips_byte_exact(
    backend: SecretBackend, value: bytes, binary: bool
) -> None:
    """Bytes, code points and whitespace come back exactly as written."""
    backend.write("exact/value", Sensitive(value), binary=binary)

    read = backend.read("exact/value")

    assert read.value.reveal() == value
    assert read.info.binary is binary


def test_new_write_becomes_current_and_old_current_previous(
    backend: SecretBackend,
) -> None:
    """A plain write moves current forward and keeps the old value as previous."""
    first = write(backend, "app/db", b"one")
    second = write(backend, "app/db", b"two")

    current = backend.read("app/db")
    previous = backend.read("app/db", stage=Stage.PREVIOUS)

    assert (current.version, current.value.reveal()) == (second, b"two")
    assert (previous.version, previous.value.reveal()) == (first, b"one")
    assert Stage.CURRENT in current.info.stages
    assert Stage.PREVIOUS in previous.info.stages


def test_read_by_version_returns_that_version(backend: SecretBackend) -> None:
    first = write(backend, "app/db", b"one")
    write(backend, "app/db", b"two")

    assert backend.read("app/db", version=first).value.reveal() == b"one"


def _fullwidth(text: str) -> str:
    """`text` with ASCII letters and digits in their fullwidth forms."""
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c
                   for c in text)  # fmt: skip


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(_fullwidth, id="fullwidth"),
        pytest.param(lambda version: "0" + version, id="leading-zero"),
        pytest.param(lambda version: " " + version, id="leading-space"),
    ],
)
def test_a_version_reads_by_its_exact_id_only(
    backend: SecretBackend, variant: Callable[[str], str]
) -> None:
    """Versions are text: a lookalike of an id never reads that version."""
    first = write(backend, "app/db", b"one")
    write(backend, "app/db", b"two")

    with pytest.raises(SecretNotFound):
        backend.read("app/db", version=variant(first))


def test_missing_secret_is_not_found(backend: SecretBackend) -> None:
    with pytest.raises(SecretNotFound):
        backend.read("never/written")


def test_missing_version_is_not_found(backend: SecretBackend) -> None:
    write(backend, "app/db", b"one")

    with pytest.raises(SecretNotFound):
        backend.read("app/db", version="999999")


def test_missing_stage_is_not_found_never_empty(backend: SecretBackend) -> None:
    """Case C01(c): no pending version yet means not found, not an empty value."""
    write(backend, "app/db", b"one")

    with pytest.raises(SecretNotFound):
        backend.read("app/db", stage=Stage.PENDING)
    with pytest.raises(SecretNotFound):
        backend.read("app/db", stage=Stage.PREVIOUS)


def test_compare_and_set_with_stale_version_fails(backend: SecretBackend) -> None:
    first = write(backend, "app/db", b"one")
    write(backend, "app/db", b"two")

    with pytest.raises(PreconditionFailed):
        write(backend, "app/db", b"three", expected_version=first)
    assert backend.read("app/db").value.reveal() == b"two"


def test_compare_and_set_with_current_version_succeeds(backend: SecretBackend) -> None:
    first = write(backend, "app/db", b"one")

    second = write(backend, "app/db", b"two", expected_version=first)

    assert backend.read("app/db").version == second


def test_create_if_absent_refuses_an_existing_secret(backend: SecretBackend) -> None:
    write(backend, "app/db", b"one", expected_version=ABSENT)

    with pytest.raises(PreconditionFailed):
        write(backend, "app/db", b"two", expected_version=ABSENT)
    assert backend.read("app/db").value.reveal() == b"one"


def test_concurrent_compare_and_set_lets_exactly_one_win(
    backend: SecretBackend,
) -> None:
    """Case C05(a): two writers on the same base; one wins, none is lost."""
    base = write(backend, "app/db", b"base")
    outcomes: list[str] = []

    def attempt(value: bytes) -> None:
        try:
            write(backend, "app/db", value, expected_version=base)
            outcomes.append("won")
        except PreconditionFailed:
            outcomes.append("stale")

    threads = [threading.Thread(target=attempt, args=(v,)) for v in (b"X", b"Y")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["stale", "won"]
    assert len(backend.versions("app/db")) == 2


def test_pending_write_leaves_current_untouched(backend: SecretBackend) -> None:
    current = write(backend, "app/db", b"one")

    pending = write(backend, "app/db", b"two", stage=Stage.PENDING)

    assert backend.read("app/db").version == current
    assert backend.read("app/db", stage=Stage.PENDING).version == pending


def test_promote_makes_pending_current_and_current_previous(
    backend: SecretBackend,
) -> None:
    first = write(backend, "app/db", b"one")
    pending = write(backend, "app/db", b"two", stage=Stage.PENDING)

    backend.promote("app/db", pending)

    assert backend.read("app/db").value.reveal() == b"two"
    assert backend.read("app/db", stage=Stage.PREVIOUS).version == first
    with pytest.raises(SecretNotFound):
        backend.read("app/db", stage=Stage.PENDING)


def test_disabled_version_cannot_be_read_until_enabled(backend: SecretBackend) -> None:
    first = write(backend, "app/db", b"one")
    write(backend, "app/db", b"two")

    backend.set_enabled("app/db", first, False)
    with pytest.raises(VersionDisabled):
        backend.read("app/db", version=first)

    backend.set_enabled("app/db", first, True)
    assert backend.read("app/db", version=first).value.reveal() == b"one"


def test_previous_stage_of_a_disabled_version_reads_as_disabled(
    backend: SecretBackend,
) -> None:
    """The stage's holder is disabled, not absent: every store says so alike."""
    first = write(backend, "app/db", b"one")
    write(backend, "app/db", b"two")

    backend.set_enabled("app/db", first, False)

    with pytest.raises(VersionDisabled):
        backend.read("app/db", stage=Stage.PREVIOUS)


def test_versions_lists_every_version_oldest_first(backend: SecretBackend) -> None:
    written = [write(backend, "app/db", value) for value in (b"a", b"b", b"c")]

    assert [info.version for info in backend.versions("app/db")] == written


def test_same_idempotency_key_answers_the_first_write(backend: SecretBackend) -> None:
    first = write(backend, "app/db", b"one", idempotency_key="rotation-1")
    again = write(backend, "app/db", b"one", idempotency_key="rotation-1")

    assert again == first
    assert len(backend.versions("app/db")) == 1


def test_listing_pages_through_every_secret_once(backend: SecretBackend) -> None:
    """Case C18: every page is followed, nothing is listed twice."""
    names = {f"many/s{index:02d}" for index in range(23)}
    for name in names:
        write(backend, name, b"x")

    seen: list[str] = []
    token = None
    for _page in range(50):
        page = backend.list("many/", page_size=5, page_token=token)
        seen.extend(item.path for item in page.items)
        token = page.next_token
        if token is None:
            break

    assert sorted(seen) == sorted(names)


def test_listing_prefix_does_not_reach_sibling_prefixes(
    backend: SecretBackend,
) -> None:
    """Case C29: `app/` never lists `app-prod/`."""
    write(backend, "app/db", b"x")
    write(backend, "app-prod/db", b"y")

    page = backend.list("app/", page_size=10)

    assert [item.path for item in page.items] == ["app/db"]


def test_reachable_backend_passes_its_check(backend: SecretBackend) -> None:
    backend.check()


def test_backend_repr_and_errors_never_show_a_value(backend: SecretBackend) -> None:
    canary = b"canary-value-5d1c9e"
    version = write(backend, "app/db", canary)
    read = backend.read("app/db")

    texts = [repr(backend), repr(read), str(read), repr(read.value)]
    try:
        write(backend, "app/db", b"other", expected_version=ABSENT)
    except TokenBrokerError as error:
        texts.append(str(error))
    try:
        backend.read("app/db", version=version + "0")
    except TokenBrokerError as error:
        texts.append(str(error))

    assert not [text for text in texts if canary.decode() in text]
