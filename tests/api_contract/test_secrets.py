"""Secrets over the HTTP API, the same behaviours on every backend kind.

Values (C25), versions and stages, compare-and-set (C05), listing (C18, C29),
size limits (C26) and the 404 / 403 answers, each run once per environment of
the four-backend broker.
"""

from __future__ import annotations

import base64
import os

import httpx
import pytest

from backends.base import Stage
from service.sensitive import Sensitive
from tests.api_contract.api import Api

# Case C25: what must come back byte-exact through the API from every store.
TEXT_VALUES = [
    pytest.param("pässwörd-é-🔐-密", id="non-ascii-text"),
    pytest.param("  lead/trail spaces\nand newline  ", id="whitespace"),
    pytest.param("%0A%3B]", id="percent-encoding"),
]
BINARY_VALUES = [
    pytest.param(os.urandom(1024) + b"\x00\xff", id="random-bytes"),
    pytest.param(b"QUJD", id="bytes-that-look-like-base64"),
]
# The largest value each kind of store takes, in bytes (case C26); Azure keeps
# bytes as base64 text, so its limit on binary values is three quarters of it.
LIMITS = {"local": 65536, "vault": 65536, "aws": 65536, "azure": 25 * 1024}
BINARY_LIMITS = LIMITS | {"azure": 25 * 1024 * 3 // 4}


def error_of(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, str(response.json()["error"])


@pytest.mark.parametrize("value", TEXT_VALUES)
def test_text_value_reads_back_exactly(api: Api, place: str, value: str) -> None:
    """Code points and whitespace come back as written, marked as text."""
    api.version_of(api.put(f"{place}text", value))

    body = api.get(f"{place}text").json()

    assert (body["value"], body["encoding"], body["type"]) == (value, "text", "text")


@pytest.mark.parametrize("value", BINARY_VALUES)
def test_binary_value_reads_back_byte_exact(api: Api, place: str, value: bytes) -> None:
    """Bytes written as base64 come back as the same base64, never decoded twice."""
    encoded = base64.b64encode(value).decode()
    api.version_of(api.put(f"{place}binary", encoded, encoding="base64"))

    body = api.get(f"{place}binary").json()

    assert (body["encoding"], body["type"]) == ("base64", "binary")
    assert base64.b64decode(body["value"]) == value


def test_each_write_makes_a_new_version(api: Api, place: str) -> None:
    """Three writes, three distinct versions; the last one is read by default."""
    written = [api.version_of(api.put(f"{place}db", v)) for v in ("1", "2", "3")]

    current = api.get(f"{place}db").json()

    assert len(set(written)) == 3
    assert (current["version"], current["value"], current["stage"]) == (
        written[-1], "3", "current",
    )  # fmt: skip


def test_an_older_version_reads_by_its_id(api: Api, place: str) -> None:
    """`?version=` answers that version, not current."""
    first = api.version_of(api.put(f"{place}db", "one"))
    api.version_of(api.put(f"{place}db", "two"))

    body = api.get(f"{place}db", version=first).json()

    assert (body["version"], body["value"]) == (first, "one")


def test_previous_stage_reads_the_version_before_current(api: Api, place: str) -> None:
    """`?stage=previous` answers the version current replaced."""
    first = api.version_of(api.put(f"{place}db", "one"))
    api.version_of(api.put(f"{place}db", "two"))

    body = api.get(f"{place}db", stage="previous").json()

    assert (body["version"], body["value"], body["stage"]) == (
        first, "one", "previous",
    )  # fmt: skip


def test_unknown_version_is_not_found(api: Api, place: str) -> None:
    """A version id the secret never had is 404."""
    api.version_of(api.put(f"{place}db", "one"))

    assert error_of(api.get(f"{place}db", version="0" * 32)) == (404, "not_found")


def test_a_pending_version_is_refused_to_a_reader_by_its_id(
    api: Api, place: str
) -> None:
    """Case C01: a version that is only pending reads by id for the rotation
    alone, on every store; the reader's answer holds no value."""
    name = f"open/{place}rotating"
    api.version_of(api.put(name, "<PW1>"))
    backend = api.broker.broker.environments[api.env].default_backend
    pending = backend.write(
        name, Sensitive.from_text("<PW2>"), binary=False, stage=Stage.PENDING
    ).version

    refused = api.get(name, who="reader", version=pending)
    allowed = api.get(name, version=pending).json()

    assert error_of(refused) == (403, "insufficient_scope")
    assert "<PW2>" not in refused.text
    assert (allowed["value"], allowed["stage"]) == ("<PW2>", "pending")


def test_if_match_with_the_current_version_writes(api: Api, place: str) -> None:
    """A compare-and-set on the current version lands and becomes current."""
    first = api.version_of(api.put(f"{place}db", "one"))

    second = api.put(f"{place}db", "two", **{"If-Match": f'"{first}"'})

    assert api.get(f"{place}db").json()["version"] == api.version_of(second)


def test_if_match_with_a_stale_version_is_412_and_writes_nothing(
    api: Api, place: str
) -> None:
    """Case C05(a): a compare-and-set on a stale base never lands."""
    first = api.version_of(api.put(f"{place}db", "one"))
    second = api.version_of(api.put(f"{place}db", "two"))

    stale = api.put(f"{place}db", "three", **{"If-Match": f'"{first}"'})

    assert error_of(stale) == (412, "precondition_failed")
    assert api.get(f"{place}db").json()["version"] == second


def test_if_match_star_writes_over_any_current_version(api: Api, place: str) -> None:
    """RFC 9110: `If-Match: *` holds when the secret has a current version."""
    api.version_of(api.put(f"{place}db", "one"))

    second = api.put(f"{place}db", "two", **{"If-Match": "*"})

    assert api.get(f"{place}db").json()["version"] == api.version_of(second)


def test_if_match_star_on_a_missing_secret_is_412_and_creates_nothing(
    api: Api, place: str
) -> None:
    """`*` needs a current version; a secret that does not exist has none."""
    response = api.put(f"{place}absent", "one", **{"If-Match": "*"})

    assert error_of(response) == (412, "precondition_failed")
    assert error_of(api.get(f"{place}absent")) == (404, "not_found")


def test_if_match_list_holding_the_current_version_writes(api: Api, place: str) -> None:
    """A list of versions holds when one of them is current."""
    first = api.version_of(api.put(f"{place}db", "one"))
    second = api.version_of(api.put(f"{place}db", "two"))

    third = api.put(f"{place}db", "three", **{"If-Match": f'"{first}", "{second}"'})

    assert api.get(f"{place}db").json()["version"] == api.version_of(third)


def test_if_match_list_of_stale_versions_is_412(api: Api, place: str) -> None:
    """None of the listed versions is current: nothing is written."""
    first = api.version_of(api.put(f"{place}db", "one"))
    second = api.version_of(api.put(f"{place}db", "two"))

    stale = api.put(f"{place}db", "three", **{"If-Match": f'"{first}", "x"'})

    assert error_of(stale) == (412, "precondition_failed")
    assert api.get(f"{place}db").json()["version"] == second


def test_if_none_match_creates_a_secret_that_does_not_exist(
    api: Api, place: str
) -> None:
    """`If-None-Match: *` creates a secret that is not there yet."""
    created = api.put(f"{place}new", "one", **{"If-None-Match": "*"})

    assert api.get(f"{place}new").json()["version"] == api.version_of(created)


def test_if_none_match_refuses_an_existing_secret(api: Api, place: str) -> None:
    """`If-None-Match: *` on an existing secret is 412 and changes nothing."""
    first = api.version_of(api.put(f"{place}db", "one"))

    again = api.put(f"{place}db", "two", **{"If-None-Match": "*"})

    assert error_of(again) == (412, "precondition_failed")
    assert api.get(f"{place}db").json()["version"] == first


def test_listing_gives_every_secret_once_across_pages(api: Api, place: str) -> None:
    """Case C18: every page is followed to the end, no name comes twice."""
    names = [f"{place}many/s{index:02d}" for index in range(12)]
    for name in names:
        api.version_of(api.put(name, "x"))

    listed = api.list_all(f"{place}many/", page_size=5)

    assert sorted(listed) == names
    assert len(listed) == len(set(listed))


def test_listing_shows_versions_and_never_values(api: Api, place: str) -> None:
    """A listing names each secret and its current version, not its value."""
    version = api.version_of(api.put(f"{place}listed/db", "value-never-listed"))

    response = api.call("GET", "secrets", params={"prefix": f"{place}listed/"})

    assert [(s["name"], s["version"]) for s in response.json()["secrets"]] == [
        (f"{place}listed/db", version)
    ]
    assert "value-never-listed" not in response.text


def test_listing_a_prefix_never_reaches_a_sibling_prefix(api: Api, place: str) -> None:
    """Case C29: `app/` lists nothing of `app-prod/`."""
    api.version_of(api.put(f"{place}app/db", "x"))
    api.version_of(api.put(f"{place}app-prod/db", "y"))

    assert api.list_all(f"{place}app/", page_size=10) == [f"{place}app/db"]


def test_value_at_the_store_limit_is_accepted(api: Api, place: str) -> None:
    """Case C26: exactly the store's limit in bytes round-trips."""
    value = "x" * LIMITS[api.env]

    api.version_of(api.put(f"{place}big", value))

    assert api.get(f"{place}big").json()["value"] == value


@pytest.mark.parametrize(
    ("make", "size"),
    [
        pytest.param(lambda limit: "x" * (limit + 1), lambda limit: limit + 1,
                     id="one-byte-over"),
        pytest.param(lambda limit: "€" * (limit // 3 + 1),
                     lambda limit: 3 * (limit // 3 + 1), id="three-byte-characters"),
    ],
)  # fmt: skip
def test_value_over_the_store_limit_is_413_before_any_backend_call(
    api: Api, place: str, make: object, size: object
) -> None:
    """Case C26: the answer names the limit and the size in bytes, not characters,
    and the store is never asked."""
    limit = LIMITS[api.env]
    before = backend_writes(api)

    response = api.put(f"{place}big", make(limit))  # type: ignore[operator]

    assert error_of(response) == (413, "payload_too_large")
    description = response.json()["error_description"]
    assert f"{size(limit)} bytes" in description  # type: ignore[operator]
    assert f"{limit} bytes" in description
    assert backend_writes(api) == before
    assert error_of(api.get(f"{place}big")) == (404, "not_found")


def test_binary_value_at_the_store_limit_is_accepted(api: Api, place: str) -> None:
    """Case C26: binary values up to the store's limit round-trip."""
    value = os.urandom(BINARY_LIMITS[api.env])
    encoded = base64.b64encode(value).decode()

    api.version_of(api.put(f"{place}big", encoded, encoding="base64"))

    assert api.get(f"{place}big").json()["value"] == encoded


def test_binary_value_over_the_store_limit_is_413(api: Api, place: str) -> None:
    """Case C26: the size named is the value's, in bytes, not its base64 form's."""
    size = BINARY_LIMITS[api.env] + 1
    encoded = base64.b64encode(os.urandom(size)).decode()

    response = api.put(f"{place}big", encoded, encoding="base64")

    assert error_of(response) == (413, "payload_too_large")
    assert f"is {size} bytes" in response.json()["error_description"]
    assert error_of(api.get(f"{place}big")) == (404, "not_found")


def test_missing_secret_is_404(api: Api, place: str) -> None:
    """A secret the reader may read but that does not exist is 404."""
    assert error_of(api.get(f"open/{place}missing", who="reader")) == (
        404, "not_found",
    )  # fmt: skip


def test_unauthorized_secret_is_403_the_same_whether_it_exists_or_not(
    api: Api, place: str
) -> None:
    """A reader learns nothing about secrets outside its grant."""
    api.version_of(api.put(f"{place}closed", "x"))

    existing = api.get(f"{place}closed", who="reader")
    missing = api.get(f"{place}never-written", who="reader")

    assert error_of(existing) == (403, "insufficient_scope")
    assert without_request_id(existing) == without_request_id(missing)


def backend_writes(api: Api) -> float:
    """How many writes the broker has sent to the environment's backend."""
    registry = api.broker.broker.metrics
    total = 0.0
    for metric in registry.collect():
        for sample in metric.samples:
            labels = sample.labels
            if (
                sample.name == "tokenbroker_backend_calls_total"
                and labels.get("env") == api.env
                and labels.get("operation") == "write"
            ):
                total += sample.value
    return total


def without_request_id(response: httpx.Response) -> tuple[int, dict[str, object]]:
    body = dict(response.json())
    body.pop("request_id", None)
    return response.status_code, body
