"""Canaries: no secret value, client secret or token leaks out of the broker.

Unique canary strings travel through every success and error path of the API.
Afterwards the server's output, every answer it gave and every byte of its store
are searched for them (SPEC "Errors", cases C17 and C25). A secret value may show
only in a successful read of that secret, a client secret only in the answer
that created it, an access token only in the answer that issued it.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest

from tests.e2e.conftest import ADMIN_SECRET, DevBroker

SECRET = f"canary-secret-{uuid.uuid4().hex}"
UNICODE_SECRET = f"canary-pässwörd-é-🔐-密-{uuid.uuid4().hex}"
BINARY_SECRET = f"canary-binary-{uuid.uuid4().hex}".encode() + b"\x00\xff\xfe"
WRONG_CLIENT_SECRET = f"canary-client-{uuid.uuid4().hex}"
WRONG_TOKEN = f"canary-token-{uuid.uuid4().hex}"

POLICY = """\
services:
  canary-reader:
    secrets:
      read: ["canary/*"]
      write: ["canary/*"]
"""


def forms(value: str | bytes) -> set[bytes]:
    """Every shape a value takes when it slips out: raw, escaped, encoded."""
    raw = value if isinstance(value, bytes) else value.encode("utf-8")
    found = {
        raw,
        base64.b64encode(raw).rstrip(b"="),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
        raw.hex().encode(),
        repr(raw).encode()[2:-1],
    }
    if isinstance(value, str):
        found |= {
            json.dumps(value)[1:-1].encode(),  # \u00e4 and \ud83d\udd10
            json.dumps(value, ensure_ascii=False)[1:-1].encode(),
            quote(value, safe="").encode(),
            quote_plus(value).encode(),
            quote(value, safe="").lower().encode(),
        }
    # The random tail alone betrays a value that was re-encoded on the way out.
    tail = raw.rsplit(b"-", 1)[-1].rstrip(b"\x00\xff\xfe")
    if len(tail) >= 32:
        found.add(tail)
    return {form for form in found if len(form) >= 16}


def contains(haystack: bytes, value: str | bytes) -> bool:
    return any(form in haystack for form in forms(value))


def exchange_bytes(response: httpx.Response) -> bytes:
    """Status, headers and body of one answer, as searchable bytes."""
    head = [f"{response.status_code}".encode()]
    head += [name + b": " + value for name, value in response.headers.raw]
    return b"\n".join(head) + b"\n\n" + response.content


@dataclass
class Run:
    """What the module's traffic left behind, for the tests to search."""

    broker: DevBroker
    client_secret: str = ""
    access_token: str = ""
    allowed: dict[str, list[httpx.Response]] = field(default_factory=dict)
    cases: dict[str, httpx.Response] = field(default_factory=dict)

    def allow(self, kind: str, response: httpx.Response) -> httpx.Response:
        self.allowed.setdefault(kind, []).append(response)
        return response


@pytest.fixture(scope="module")
def run(dev_broker: DevBroker) -> Run:
    """Drive every path once with the canaries; answer what to search."""
    client = dev_broker.client
    admin = dev_broker.admin_token()
    assert client.put_policy(admin, "canary", POLICY).status_code == 200
    found = Run(dev_broker)

    created = found.allow(
        "client",
        client.request(
            "POST",
            "services/canary-reader/credentials",
            headers=bearer(admin),
        ),
    )
    assert created.status_code == 201
    found.client_secret = created.json()["client_secret"]
    issued = found.allow("token", client.token("canary-reader", found.client_secret))
    assert issued.status_code == 200
    found.access_token = issued.json()["access_token"]

    listed = client.request(
        "GET", "services/canary-reader/credentials", headers=bearer(admin)
    )
    assert listed.status_code == 200
    _write_and_read(found, found.access_token)
    _rotate_and_revoke(found, admin)
    _misuse_the_real_token(found, found.access_token)
    for case in CASES:
        response = case.send(dev_broker, found.access_token)
        assert response.status_code >= 400, case.id
        found.cases[case.id] = response
    return found


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _write_and_read(found: Run, token: str) -> None:
    client = found.broker.client
    put = client.put_secret
    assert put(token, "canary/text", {"value": SECRET}).status_code == 200
    assert put(token, "canary/unicode", {"value": UNICODE_SECRET}).status_code == 200
    binary = {"value": base64.b64encode(BINARY_SECRET).decode(), "encoding": "base64"}
    assert put(token, "canary/binary", binary).status_code == 200

    reads = [
        ("secret", "canary/text", {}),
        ("secret", "canary/text", {"version": "1"}),
        ("secret", "canary/text", {"stage": "current"}),
        ("unicode", "canary/unicode", {}),
        ("binary", "canary/binary", {}),
    ]
    for kind, name, params in reads:
        read = found.allow(kind, client.get_secret(token, name, **params))
        assert read.status_code == 200, read.text

    assert put(token, "canary/text", {"value": "filler"}).status_code == 200
    previous = client.get_secret(token, "canary/text", stage="previous")
    found.allow("secret", previous)
    assert previous.json()["version"] == "1"
    listing = client.request(
        "GET", "secrets", params={"prefix": "canary/"}, headers=bearer(token)
    )
    assert listing.status_code == 200


def _rotate_and_revoke(found: Run, admin: str) -> None:
    """Changes audited as intent, outcome and steps: a rotation of a canary
    secret, and a credential made and revoked."""
    client = found.broker.client
    rotated = client.request(
        "POST", "secrets/canary/unicode/rotate", headers=bearer(admin)
    )
    assert rotated.status_code in (200, 202), rotated.text
    spare = client.request(
        "POST", "services/canary-reader/credentials", headers=bearer(admin)
    )
    assert spare.status_code == 201
    credential_id = spare.json()["credential_id"]
    revoked = client.request(
        "DELETE",
        f"services/canary-reader/credentials/{credential_id}",
        headers=bearer(admin),
    )
    assert revoked.status_code == 204


def _misuse_the_real_token(found: Run, token: str) -> None:
    """A real token on paths its scopes or its environment do not reach."""
    client = found.broker.client
    forbidden = [
        client.get_secret(token, "elsewhere/x"),
        client.put_secret(token, "elsewhere/x", {"value": SECRET}),
        client.put_policy(token, "evil", POLICY),
        client.request(
            "POST", "services/canary-reader/credentials", headers=bearer(token)
        ),
        client.request("GET", "/v1/prod/secrets/canary/text", headers=bearer(token)),
        client.request(
            "GET", "/v1/dev/secrets/canary/text", headers={"Authorization": token}
        ),
    ]
    assert all(response.status_code in (401, 403, 404) for response in forbidden)


@dataclass(frozen=True)
class Case:
    """One hostile request: which canary it carries, and how it is sent."""

    id: str
    canary: str
    send_with: Callable[[DevBroker, str, str], httpx.Response]

    def send(self, broker: DevBroker, token: str) -> httpx.Response:
        return self.send_with(broker, token, self.canary)


def _own(name: str) -> str:
    """A canary of its own for a path that once echoed, so a relapse is one test."""
    return f"canary-{name}-{uuid.uuid4().hex}"


def _put_raw(
    broker: DevBroker,
    token: str,
    body: bytes,
    name: str = "canary/text",
    **headers: str,
) -> httpx.Response:
    return broker.client.request(
        "PUT",
        f"secrets/{name}",
        content=body,
        headers={**bearer(token), "Content-Type": "application/json", **headers},
    )


def _put_json(
    broker: DevBroker, token: str, body: object, **headers: str
) -> httpx.Response:
    return _put_raw(broker, token, json.dumps(body).encode(), **headers)


def _form(broker: DevBroker, body: str, **headers: str) -> httpx.Response:
    return broker.client.request(
        "POST",
        "token",
        content=body.encode("utf-8"),
        headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
    )


def _token_form(broker: DevBroker, **form: str) -> httpx.Response:
    return broker.client.request(
        "POST", "token", data={"grant_type": "client_credentials", **form}
    )


def _admin_policy(broker: DevBroker, document: str, media: str) -> httpx.Response:
    return broker.client.request(
        "PUT",
        "policies/canary-bad",
        content=document.encode("utf-8"),
        headers={**bearer(broker.admin_token()), "Content-Type": media},
    )


def _basic(value: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(value.encode()).decode()}


S, C = SECRET, WRONG_CLIENT_SECRET
CASES = [
    Case(
        "cas-failure-412",
        S,
        lambda b, t, c: _put_json(b, t, {"value": c}, **{"If-Match": '"99"'}),
    ),
    Case(
        "if-none-match-refused",
        S,
        lambda b, t, c: _put_json(b, t, {"value": c}, **{"If-None-Match": "*"}),
    ),
    Case(
        "oversize-413",
        S,
        lambda b, t, c: _put_raw(b, t, json.dumps({"value": c + "x" * 70000}).encode()),
    ),
    Case(
        "body-over-the-request-limit",
        S,
        lambda b, t, c: _put_raw(b, t, json.dumps({"value": c * 40000}).encode()),
    ),
    Case(
        "malformed-json-unterminated",
        S,
        lambda b, t, c: _put_raw(b, t, f'{{"value": "{c}'.encode()),
    ),
    Case(
        "malformed-json-bare-word",
        S,
        lambda b, t, c: _put_raw(b, t, f'{{"value": {c}}}'.encode()),
    ),
    Case(
        "malformed-json-trailing-garbage",
        S,
        lambda b, t, c: _put_raw(b, t, f'{{"value": "x"}} {c}'.encode()),
    ),
    Case(
        "json-not-an-object",
        S,
        lambda b, t, c: _put_raw(b, t, json.dumps([c]).encode()),
    ),
    Case(
        "value-not-a-string",
        S,
        lambda b, t, c: _put_raw(b, t, json.dumps({"value": {c: c}}).encode()),
    ),
    Case(
        "invalid-utf8-body",
        UNICODE_SECRET,
        lambda b, t, c: _put_raw(b, t, f'{{"value": "{c}"}}'.encode("utf-16")),
    ),
    Case(
        "latin1-body",
        UNICODE_SECRET,
        lambda b, t, c: _put_raw(
            b, t, f'{{"value": "{c}"}}'.encode("latin-1", "replace")
        ),
    ),
    Case(
        "wrong-encoding-value-not-base64",
        S,
        lambda b, t, c: _put_raw(
            b, t, json.dumps({"value": c, "encoding": "base64"}).encode()
        ),
    ),
    Case(
        "wrong-encoding-name",
        S,
        lambda b, t, c: _put_raw(
            b, t, json.dumps({"value": "x", "encoding": c}).encode()
        ),
    ),
    Case(
        "unknown-field-value",
        S,
        lambda b, t, c: _put_raw(b, t, json.dumps({"value": "x", "extra": c}).encode()),
    ),
    Case(
        "unknown-field-key",
        _own("field-key"),
        lambda b, t, c: _put_raw(b, t, json.dumps({"value": "x", c: "y"}).encode()),
    ),
    Case(
        "if-match-value",
        _own("if-match"),
        lambda b, t, c: _put_raw(
            b, t, json.dumps({"value": "x"}).encode(), **{"If-Match": f'"{c}"'}
        ),
    ),
    Case(
        "if-none-match-value",
        S,
        lambda b, t, c: _put_raw(
            b, t, json.dumps({"value": "x"}).encode(), **{"If-None-Match": c}
        ),
    ),
    Case(
        "query-version",
        S,
        lambda b, t, c: b.client.get_secret(t, "canary/text", version=c),
    ),
    Case(
        "query-stage",
        S,
        lambda b, t, c: b.client.get_secret(t, "canary/text", stage=c),
    ),
    Case(
        "query-page-token",
        S,
        lambda b, t, c: b.client.request(
            "GET", "secrets", params={"page_token": c}, headers=bearer(t)
        ),
    ),
    Case(
        "query-page-size",
        S,
        lambda b, t, c: b.client.request(
            "GET", "secrets", params={"page_size": c}, headers=bearer(t)
        ),
    ),
    Case(
        "token-wrong-client-secret",
        C,
        lambda b, t, c: b.client.token("canary-reader", c),
    ),
    Case(
        "token-wrong-client-secret-in-form",
        C,
        lambda b, t, c: _token_form(b, client_id="canary-reader", client_secret=c),
    ),
    Case(
        "token-client-id",
        _own("client-id"),
        lambda b, t, c: b.client.token(c, c),
    ),
    Case(
        "token-grant-type",
        C,
        lambda b, t, c: _form(b, f"grant_type={c}&client_id=x&client_secret={c}"),
    ),
    Case(
        "token-ttl",
        C,
        lambda b, t, c: _token_form(
            b, client_id="admin", client_secret=ADMIN_SECRET, ttl=c
        ),
    ),
    Case(
        "token-basic-without-colon",
        C,
        lambda b, t, c: _form(b, "grant_type=client_credentials", **_basic(c)),
    ),
    Case(
        "token-basic-not-base64",
        C,
        lambda b, t, c: _form(
            b, "grant_type=client_credentials", Authorization=f"Basic {c}!"
        ),
    ),
    Case(
        "token-basic-and-form-secret",
        C,
        lambda b, t, c: _form(
            b,
            f"grant_type=client_credentials&client_secret={c}",
            **_basic(f"canary-reader:{c}"),
        ),
    ),
    Case(
        "token-duplicated-form-fields",
        C,
        lambda b, t, c: _form(
            b,
            "grant_type=client_credentials&client_id=canary-reader"
            f"&client_secret={c}&client_secret={c}x",
        ),
    ),
    Case(
        "token-form-invalid-utf8",
        C,
        lambda b, t, c: b.client.request(
            "POST",
            "token",
            content=b"grant_type=client_credentials&client_secret=\xff" + c.encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
    ),
    Case(
        "token-json-body",
        C,
        lambda b, t, c: b.client.request(
            "POST", "token", json={"client_id": "canary-reader", "client_secret": c}
        ),
    ),
    Case(
        "token-scope",
        _own("scope"),
        lambda b, t, c: _token_form(
            b, client_id="admin", client_secret=ADMIN_SECRET, scope=c
        ),
    ),
    Case(
        "token-audience",
        _own("audience"),
        lambda b, t, c: _token_form(
            b, client_id="admin", client_secret=ADMIN_SECRET, audience=c
        ),
    ),
    Case(
        "bearer-garbage",
        WRONG_TOKEN,
        lambda b, t, c: b.client.get_secret(c, "canary/text"),
    ),
    Case(
        "bearer-garbage-as-jwt",
        WRONG_TOKEN,
        lambda b, t, c: b.client.get_secret(f"{c}.{c}.{c}", "canary/text"),
    ),
    Case(
        "policy-max-ttl-value",
        S,
        lambda b, t, c: _admin_policy(
            b, f"services:\n  svc:\n    max_ttl: {c}\n", "application/yaml"
        ),
    ),
    Case(
        "policy-admin-value",
        S,
        lambda b, t, c: _admin_policy(
            b, f"services:\n  svc:\n    admin: {c}\n", "application/yaml"
        ),
    ),
    Case(
        "policy-pattern-value",
        S,
        lambda b, t, c: _admin_policy(
            b,
            f"services:\n  svc:\n    secrets:\n      read: ['{c} x']\n",
            "application/yaml",
        ),
    ),
    Case(
        "policy-not-yaml",
        S,
        lambda b, t, c: _admin_policy(b, f"services: [{c}\n", "application/yaml"),
    ),
    Case(
        "policy-not-json",
        S,
        lambda b, t, c: _admin_policy(b, f'{{"services": {c}', "application/json"),
    ),
    Case(
        "policy-unknown-key",
        _own("policy-key"),
        lambda b, t, c: _admin_policy(
            b, f"services:\n  svc:\n    {c}: 1\n", "application/yaml"
        ),
    ),
]


@pytest.mark.parametrize("case_id", [case.id for case in CASES])
def test_error_answer_does_not_echo_the_canary_sent(run: Run, case_id: str) -> None:
    case = next(case for case in CASES if case.id == case_id)
    response = run.cases[case_id]

    assert 400 <= response.status_code < 500, response.text
    assert not contains(exchange_bytes(response), case.canary), response.text


def test_search_finds_each_canary_where_it_belongs(run: Run) -> None:
    """The search itself works: every allowed answer does hold its canary."""
    expected = {
        "secret": SECRET,
        "unicode": UNICODE_SECRET,
        "binary": BINARY_SECRET,
        "client": run.client_secret,
        "token": run.access_token,
    }
    for kind, value in expected.items():
        for response in run.allowed[kind]:
            assert contains(exchange_bytes(response), value), kind


def test_a_logged_canary_in_any_encoding_would_be_found() -> None:
    line = json.dumps({"event": "oops", "value": UNICODE_SECRET}).encode()

    assert contains(line, UNICODE_SECRET)
    assert contains(quote(UNICODE_SECRET).encode(), UNICODE_SECRET)
    assert b"\\u00e4" in line


def real_canaries(run: Run) -> dict[str, str | bytes]:
    return {
        "secret": SECRET,
        "unicode": UNICODE_SECRET,
        "binary": BINARY_SECRET,
        "client": run.client_secret,
        "token": run.access_token,
    }


def all_canaries(run: Run) -> list[str | bytes]:
    """Every canary sent."""
    found: list[str | bytes] = [*real_canaries(run).values()]
    found += [WRONG_CLIENT_SECRET, WRONG_TOKEN]
    found += [case.canary for case in CASES]
    return list(dict.fromkeys(found))


def test_each_canary_appears_only_in_the_answer_it_belongs_to(run: Run) -> None:
    leaks = []
    for response in run.broker.client.responses:
        seen = exchange_bytes(response)
        for kind, value in real_canaries(run).items():
            belongs = any(response is ok for ok in run.allowed.get(kind, []))
            if not belongs and contains(seen, value):
                leaks.append(f"{kind} in {response.request.method} {response.url}")
        for value in (WRONG_CLIENT_SECRET, WRONG_TOKEN):
            if contains(seen, value):
                leaks.append(f"{value[:13]} in {response.url}")

    assert leaks == []


def test_the_secret_value_shows_only_in_successful_reads(run: Run) -> None:
    for kind in ("secret", "unicode", "binary"):
        for response in run.allowed[kind]:
            assert response.request.method == "GET"
            assert response.status_code == 200
            assert response.headers["cache-control"] == "no-store"


def test_server_output_holds_no_canary(run: Run) -> None:
    output = run.broker.process.output().encode("utf-8")

    found = [value for value in all_canaries(run) if contains(output, value)]

    assert found == []


def stored_values(database: Path) -> Iterable[tuple[str, bytes]]:
    """Every column of every row of every table, as `table.column` and bytes."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            )
        ]
        for table in tables:
            cursor = connection.execute(f'SELECT * FROM "{table}"')  # noqa: S608
            columns = [f"{table}.{column[0]}" for column in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row, strict=True):
                    if isinstance(value, bytes):
                        yield column, value
                    elif value is not None:
                        yield column, str(value).encode("utf-8")
    finally:
        connection.close()


def store_folder(run: Run) -> Path:
    return run.broker.process.folder / ".tokenbroker"


def test_no_stored_record_holds_a_canary(run: Run) -> None:
    values = list(stored_values(store_folder(run) / "state.db"))
    assert any(column.startswith("local_secret_versions.") for column, _ in values)

    found = [
        (column, str(canary)[:20])
        for column, value in values
        for canary in all_canaries(run)
        if contains(value, canary)
    ]

    assert found == []


def test_the_store_search_reaches_every_kind_of_audit_record(run: Run) -> None:
    """Intents, rotation steps and dev mode's own admin records are searched."""
    values = list(stored_values(store_folder(run) / "state.db"))
    kinds = {
        value
        for column, value in values
        if column in ("audit_records.action", "audit_records.outcome")
    }

    assert {b"requested", b"rotation.create", b"rotation.finish"} <= kinds
    assert {b"credential.create", b"credential.revoke", b"secret.write"} <= kinds


def test_raw_store_files_hold_no_canary(run: Run) -> None:
    """The database file and its write-ahead log, byte for byte (C25 forms too)."""
    files = [
        path
        for path in store_folder(run).iterdir()
        if path.name.startswith("state.db") and path.is_file()
    ]
    raw = b"".join(path.read_bytes() for path in files)
    assert len(raw) > 0

    found = [str(canary)[:20] for canary in all_canaries(run) if contains(raw, canary)]

    assert found == []


def test_an_unauthenticated_client_id_is_not_stored(run: Run) -> None:
    """A secret pasted into client_id by mistake must not land in the audit log."""
    canary = next(case.canary for case in CASES if case.id == "token-client-id")
    values = stored_values(store_folder(run) / "state.db")

    assert [column for column, value in values if contains(value, canary)] == []
