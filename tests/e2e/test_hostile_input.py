"""Hostile input: forged tokens and garbage everywhere, against the real process.

Every request here must end in a precise 4xx (never a 500, never a traceback in
the answer) and leave the broker healthy, with no traceback in its log.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.clock import SystemClock
from service.crypto import KeyEncryptionKey
from service.keys import KeyRing
from service.store.database import open_store
from tests.e2e.broker_process import BrokerProcess
from tests.e2e.client import BrokerClient
from tests.e2e.conftest import ADMIN_SECRET, DevBroker

INVALID_TOKEN = "the bearer token is not valid"


@pytest.fixture(scope="module")
def admin(dev_broker: DevBroker) -> str:
    return dev_broker.admin_token()


@pytest.fixture(autouse=True)
def _stays_healthy(dev_broker: DevBroker) -> Iterator[None]:
    """After each test the broker answers and has logged no traceback."""
    before = len(dev_broker.process.output())
    yield
    assert httpx.get(f"{dev_broker.process.url}/healthz", timeout=10).status_code == 200
    new_output = dev_broker.process.output()[before:]
    assert "Traceback" not in new_output
    assert '"level": "error"' not in new_output


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_precise_client_error(response: httpx.Response, *statuses: int) -> None:
    assert response.status_code in statuses, response.text
    assert "Traceback" not in response.text
    assert response.json()["error"] != "server_error"


def raw_request(url: str, data: bytes, timeout: float = 20) -> tuple[int, bytes]:
    """Send bytes as they are (no client-side normalisation); the status and body."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as connection:
        # The server may answer and close before reading everything.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.sendall(data)
        answer = b""
        try:
            while chunk := connection.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def http_bytes(method: str, path: str, *headers: str, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += headers
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# Case C14: tokens built to trick a verifier. Each must be 401, never 500.


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(header: dict[str, Any], claims: dict[str, Any], key: bytes) -> str:
    """An HS256 token by hand: libraries refuse some of these keys."""
    signing_input = f"{b64url(json.dumps(header).encode())}." + b64url(
        json.dumps(claims).encode()
    )
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


class Forger:
    """Signs tokens with the broker's own signing key, read from its dev folder."""

    def __init__(self, folder: Path, issuer: str) -> None:
        kek = KeyEncryptionKey.from_file(
            folder / "encryption.key", setting="encryption_key_file"
        )
        engine = open_store(f"sqlite:///{folder / 'state.db'}")
        try:
            keyring = KeyRing("dev", engine, kek, SystemClock())
            keyring.load()
            key = keyring.signing_key()
        finally:
            engine.dispose()
        assert key.private_key is not None
        self.kid = key.kid
        self.private_key = key.private_key
        self.public_jwk = key.public_jwk
        self.issuer = issuer

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.issuer, "sub": "admin", "aud": self.issuer, "env": "dev",
            "scope": "admin", "iat": now, "nbf": now, "exp": now + 300,
            "jti": f"forged-{now}",
        }  # fmt: skip
        claims.update(changes)
        return {name: value for name, value in claims.items() if value is not None}

    def sign(self, key: Ed25519PrivateKey | None = None, **changes: Any) -> str:
        return jwt.encode(
            self.claims(**changes),
            key or self.private_key,
            algorithm="EdDSA",
            headers={"kid": self.kid, "typ": "at+jwt"},
        )


@pytest.fixture(scope="module")
def forger(dev_broker: DevBroker) -> Forger:
    return Forger(dev_broker.process.folder / ".tokenbroker", dev_broker.client.base)


def _public_key_bytes(forger: Forger) -> dict[str, bytes]:
    public = forger.private_key.public_key()
    return {
        "raw": public.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        ),
        "x": forger.public_jwk["x"].encode(),
        "jwk": json.dumps(forger.public_jwk).encode(),
        "pem": public.public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        ),
    }


def _alg_none(forger: Forger) -> str:
    header = {"alg": "none", "kid": forger.kid, "typ": "at+jwt"}
    return f"{b64url(json.dumps(header).encode())}." + (
        b64url(json.dumps(forger.claims()).encode()) + "."
    )


HOSTILE_TOKENS: dict[str, Callable[[Forger], str]] = {
    "kid-path-empty-key": lambda f: hs256(
        {"alg": "HS256", "kid": "../../../../dev/null"}, f.claims(), b""
    ),
    "kid-sql": lambda f: hs256(
        {"alg": "HS256", "kid": "k1' OR '1'='1"}, f.claims(), b""
    ),
    "kid-10-kb": lambda f: hs256({"alg": "HS256", "kid": "k" * 10240}, f.claims(), b""),
    "kid-nul": lambda f: hs256(
        {"alg": "HS256", "kid": f.kid + "\x00"}, f.claims(), b""
    ),
    "kid-leading-space": lambda f: f.sign().replace(
        f.sign().split(".")[0],
        b64url(json.dumps({"alg": "EdDSA", "kid": " " + f.kid}).encode()),
    ),
    "kid-not-a-string": lambda f: hs256({"alg": "HS256", "kid": 1}, f.claims(), b""),
    "alg-none": _alg_none,
    "hs256-with-raw-public-key": lambda f: hs256(
        {"alg": "HS256", "kid": f.kid}, f.claims(), _public_key_bytes(f)["raw"]
    ),
    "hs256-with-jwk-x": lambda f: hs256(
        {"alg": "HS256", "kid": f.kid}, f.claims(), _public_key_bytes(f)["x"]
    ),
    "hs256-with-jwk-json": lambda f: hs256(
        {"alg": "HS256", "kid": f.kid}, f.claims(), _public_key_bytes(f)["jwk"]
    ),
    "hs256-with-pem": lambda f: hs256(
        {"alg": "HS256", "kid": f.kid}, f.claims(), _public_key_bytes(f)["pem"]
    ),
    "another-audience": lambda f: f.sign(aud="ledger-api"),
    "another-env-claim": lambda f: f.sign(env="prod"),
    "another-issuer": lambda f: f.sign(iss="http://127.0.0.1:1/v1/dev"),
    "expired-valid-signature": lambda f: f.sign(
        iat=int(time.time()) - 600, nbf=int(time.time()) - 600, exp=int(time.time()) - 1
    ),
    "not-yet-valid": lambda f: f.sign(nbf=int(time.time()) + 600),
    "without-jti": lambda f: f.sign(jti=None),
    "signed-by-another-key": lambda f: f.sign(key=Ed25519PrivateKey.generate()),
    "payload-altered": lambda f: ".".join(
        [
            f.sign().split(".")[0],
            b64url(json.dumps(f.claims(sub="root")).encode()),
            f.sign().split(".")[2],
        ]
    ),
}


def test_a_token_forged_with_the_real_key_is_accepted(
    dev_broker: DevBroker, forger: Forger
) -> None:
    """The forger works, so the 401s below are about the token, not the tooling."""
    response = dev_broker.client.request(
        "GET", "secrets", headers=bearer(forger.sign())
    )

    assert response.status_code == 200


@pytest.mark.parametrize("kind", list(HOSTILE_TOKENS))
def test_hostile_token_is_refused_like_any_invalid_token(
    dev_broker: DevBroker, forger: Forger, kind: str
) -> None:
    token = HOSTILE_TOKENS[kind](forger)

    response = dev_broker.client.request(
        "GET", "secrets/hostile/x", headers=bearer(token)
    )

    assert_precise_client_error(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error_description"] == INVALID_TOKEN


@pytest.mark.parametrize(
    "value",
    ["x", "a.b.c", "....", "é", "Bearer x", "%00", "a" * 9000, "W1tdXQ.W1tdXQ.W1tdXQ"],
    ids=["word", "dots", "empty-parts", "non-ascii", "twice", "nul", "9-kb", "arrays"],
)
def test_garbage_bearer_token_is_401(dev_broker: DevBroker, value: str) -> None:
    response = dev_broker.client.request(
        "GET", "secrets", headers={"Authorization": f"Bearer {value}".encode()}
    )

    assert_precise_client_error(response, 401)


# Garbage in the HTTP request itself.


def test_a_one_megabyte_header_is_refused(dev_broker: DevBroker) -> None:
    request = http_bytes("GET", "/healthz", "X-Big: " + "a" * 1024 * 1024)

    status, _body = raw_request(dev_broker.process.url, request)

    assert status in (400, 431)


def test_many_headers_over_the_limit_together_are_refused(
    dev_broker: DevBroker,
) -> None:
    """The bound is on the whole head, not on one header."""
    headers = [f"X-Part-{index}: {'a' * 1000}" for index in range(64)]

    status, body = raw_request(
        dev_broker.process.url, http_bytes("GET", "/healthz", *headers)
    )

    assert status == 431
    assert json.loads(body)["error"] == "request_header_fields_too_large"


def test_a_head_sent_byte_by_byte_is_bounded_too(dev_broker: DevBroker) -> None:
    """Many small reads add up: the count is per head, not per read."""
    host, port = dev_broker.process.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for _ in range(64):
                connection.sendall(b"a" * 1024)
                time.sleep(0.002)
        answer = connection.recv(65536)

    assert answer.startswith(b"HTTP/1.1 431 ")


def test_a_head_just_under_the_limit_is_served(dev_broker: DevBroker) -> None:
    request = http_bytes("GET", "/healthz", "X-Big: " + "a" * 30_000)

    status, _body = raw_request(dev_broker.process.url, request)

    assert status == 200


def test_keep_alive_requests_each_get_the_whole_limit(dev_broker: DevBroker) -> None:
    """The count starts again with each request on a connection."""
    with httpx.Client(base_url=dev_broker.process.url, timeout=10) as client:
        statuses = [
            client.get("/healthz", headers={"X-Big": "a" * 20_000}).status_code
            for _ in range(5)
        ]

    assert statuses == [200] * 5


def test_a_100_kb_query_string_is_refused(dev_broker: DevBroker) -> None:
    request = http_bytes("GET", "/v1/dev/secrets?prefix=" + "a" * 100_000)

    status, body = raw_request(dev_broker.process.url, request)

    assert 400 <= status < 500
    assert b"Traceback" not in body


def test_a_nul_byte_in_the_request_line_is_400(dev_broker: DevBroker) -> None:
    status, _body = raw_request(
        dev_broker.process.url, http_bytes("GET", "/v1/dev/secrets/a\x00b")
    )

    assert status == 400


def test_a_nul_byte_in_a_header_is_400(dev_broker: DevBroker) -> None:
    request = http_bytes("GET", "/v1/dev/secrets/a", "Authorization: Bearer a\x00b")

    status, _body = raw_request(dev_broker.process.url, request)

    assert status == 400


TRAVERSALS = [
    "a/../b", "../x", "../../../../etc/passwd", "a/./b", "%2e%2e/x", "a/%2e%2e/b",
    "a/%2E%2E/b", ".", "a//b", "a/b/", "%2Fa", "a%00b", "a/b%00", "a%2f%2e%2e%2fb",
    "a\\..\\b", "a%0Ab", "a%0A", "a%0D%0Ab",
]  # fmt: skip


@pytest.mark.parametrize("method", ["GET", "PUT"])
@pytest.mark.parametrize("name", TRAVERSALS)
def test_path_tricks_in_a_secret_name_are_400(
    dev_broker: DevBroker, admin: str, method: str, name: str
) -> None:
    body = b'{"value": "x"}' if method == "PUT" else b""
    request = http_bytes(
        method,
        f"/v1/dev/secrets/{name}",
        f"Authorization: Bearer {admin}",
        "Content-Type: application/json",
        body=body,
    )

    status, answer = raw_request(dev_broker.process.url, request)

    assert status == 400, answer
    assert json.loads(answer)["error"] == "invalid_request"


def test_nothing_was_written_by_the_path_tricks(
    dev_broker: DevBroker, admin: str
) -> None:
    listing = dev_broker.client.request("GET", "secrets", headers=bearer(admin)).json()

    names = [entry["name"] for entry in listing["secrets"]]
    assert not [name for name in names if ".." in name or name in ("b", "x")]


def test_a_nul_in_a_text_value_round_trips(dev_broker: DevBroker, admin: str) -> None:
    value = "before\x00after"
    dev_broker.client.put_secret(admin, "hostile/nul", {"value": value})

    read = dev_broker.client.get_secret(admin, "hostile/nul").json()

    assert read["value"] == value


@pytest.mark.parametrize(
    "body",
    [
        b'{"value": "\xff\xfe"}',
        '{"value": "x"}'.encode("utf-16"),
        b'{"value": "\\ud800"}',
        b'{"value": "x"',
        b"",
        b"null",
        b'{"value": "x"} trailing',
        b'{"value": NaN}',
    ],
    ids=[
        "invalid-utf8", "utf16", "lone-surrogate", "unterminated", "empty", "null",
        "trailing-garbage", "nan",
    ],
)  # fmt: skip
def test_unreadable_secret_body_is_400(
    dev_broker: DevBroker, admin: str, body: bytes
) -> None:
    response = dev_broker.client.request(
        "PUT",
        "secrets/hostile/body",
        content=body,
        headers={**bearer(admin), "Content-Type": "application/json"},
    )

    assert_precise_client_error(response, 400)


def test_json_with_duplicate_keys_is_refused(dev_broker: DevBroker, admin: str) -> None:
    """Two `value` keys are ambiguous: a proxy may read one and the broker another."""
    response = dev_broker.client.request(
        "PUT",
        "secrets/hostile/duplicate",
        content=b'{"value": "first", "value": "second"}',
        headers={**bearer(admin), "Content-Type": "application/json"},
    )

    assert_precise_client_error(response, 400)
    assert "second" not in response.text
    assert dev_broker.client.get_secret(admin, "hostile/duplicate").status_code == 404


def test_a_bulk_rotation_with_duplicate_keys_is_refused(
    dev_broker: DevBroker, admin: str
) -> None:
    """Every JSON body is read the one strict way, not only secret writes."""
    response = dev_broker.client.request(
        "POST",
        "rotations",
        content=b'{"pattern": "nothing/*", "pattern": "nowhere/*"}',
        headers={**bearer(admin), "Content-Type": "application/json"},
    )

    assert_precise_client_error(response, 400)


def test_deeply_nested_json_body_is_400(dev_broker: DevBroker, admin: str) -> None:
    body = b'{"value": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"

    response = dev_broker.client.request(
        "PUT",
        "secrets/hostile/deep",
        content=body,
        headers={**bearer(admin), "Content-Type": "application/json"},
    )

    assert_precise_client_error(response, 400)


@pytest.mark.parametrize(
    "body",
    [
        b"grant_type=client_credentials&client_id=admin&client_secret=\xff\xfe",
        "grant_type=client_credentials".encode("utf-16"),
        b"&".join(b"f%d=x" % index for index in range(100)),
    ],
    ids=["invalid-utf8", "utf16", "100-fields"],
)
def test_unreadable_token_form_is_400(dev_broker: DevBroker, body: bytes) -> None:
    response = dev_broker.client.request(
        "POST",
        "token",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert_precise_client_error(response, 400)


def test_percent_encoded_invalid_utf8_secret_is_invalid_client(
    dev_broker: DevBroker,
) -> None:
    response = dev_broker.client.request(
        "POST",
        "token",
        content=b"grant_type=client_credentials&client_id=admin&client_secret=%ff%fe",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert_precise_client_error(response, 401)
    assert response.json()["error"] == "invalid_client"


def _oversized_body() -> bytes:
    return b'{"value": "' + b"a" * (3 * 1024 * 1024) + b'"}'


def _chunks(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), 65536):
        yield data[start : start + 65536]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_over_the_limit_is_413_and_writes_nothing(
    dev_broker: DevBroker, admin: str, framing: str
) -> None:
    name = f"hostile/huge-{framing}"
    body = _oversized_body()
    content = body if framing == "content-length" else _chunks(body)

    response = dev_broker.client.request(
        "PUT",
        f"secrets/{name}",
        content=content,
        headers={**bearer(admin), "Content-Type": "application/json"},
    )

    assert_precise_client_error(response, 413)
    assert dev_broker.client.get_secret(admin, name).status_code == 404


def test_a_false_content_length_is_400(dev_broker: DevBroker, admin: str) -> None:
    request = http_bytes(
        "PUT", "/v1/dev/secrets/hostile/cl", f"Authorization: Bearer {admin}",
        "Content-Length: -1",
    )  # fmt: skip

    status, _body = raw_request(dev_broker.process.url, request)

    assert status == 400


# Compare-and-set with hostile preconditions.


@pytest.mark.parametrize(
    ("if_match", "status"),
    [
        pytest.param('W/"1"', 400, id="weak"),
        pytest.param("a" * 200, 400, id="200-characters"),
        pytest.param('"abc"', 412, id="not-a-version"),
        pytest.param('"0", "1"', 412, id="a-list-without-current"),
        pytest.param("-1", 412, id="negative"),
        pytest.param("99999999999999999999", 412, id="huge"),
        pytest.param('""', 412, id="empty-quotes"),
        pytest.param("", 400, id="empty"),
        pytest.param('"', 400, id="one-quote"),
        pytest.param('"2', 400, id="unterminated"),
    ],
)
def test_garbage_if_match_never_writes(
    dev_broker: DevBroker, admin: str, if_match: str, status: int
) -> None:
    name = f"hostile/cas-{abs(hash(if_match))}"
    dev_broker.client.put_secret(admin, name, {"value": "one"})
    dev_broker.client.put_secret(admin, name, {"value": "two"})

    response = dev_broker.client.put_secret(
        admin, name, {"value": "three"}, **{"If-Match": if_match}
    )

    assert_precise_client_error(response, status)
    assert dev_broker.client.get_secret(admin, name).json()["version"] == "2"


def test_concurrent_compare_and_set_has_exactly_one_winner(
    dev_broker: DevBroker, admin: str
) -> None:
    dev_broker.client.put_secret(admin, "hostile/race", {"value": "base"})
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def write(index: int) -> None:
        with httpx.Client(base_url=dev_broker.client.base, timeout=30) as client:
            barrier.wait()
            response = client.put(
                "secrets/hostile/race",
                json={"value": f"writer-{index}"},
                headers={**bearer(admin), "If-Match": '"1"'},
            )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=write, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [200] + [412] * 7
    current = dev_broker.client.get_secret(admin, "hostile/race").json()
    assert current["version"] == "2"


# Policy documents built to exhaust the parser.

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def put_policy(
    client: BrokerClient, token: str, name: str, body: bytes, media: str, **kw: Any
) -> httpx.Response:
    return client.request(
        "PUT",
        f"policies/{name}",
        content=body,
        headers={**bearer(token), "Content-Type": media},
        **kw,
    )


@pytest.mark.parametrize(
    ("body", "media"),
    [
        pytest.param(BILLION_LAUGHS.encode(), "application/yaml", id="billion-laughs"),
        pytest.param(
            b"services: &s {a: {admin: true}}\nmore: *s\n", "application/yaml",
            id="alias",
        ),
        pytest.param(
            b"services:\n  a: {admin: true}\n  a: {admin: false}\n", "application/yaml",
            id="yaml-duplicate-key",
        ),
        pytest.param(
            b'{"services": {"a": {"admin": true}, "a": {}}}', "application/json",
            id="json-duplicate-key",
        ),
        pytest.param(
            b"[" * 100_000 + b"]" * 100_000, "application/json", id="deep-json"
        ),
        pytest.param(b"a: [[[[[[[[[[", "application/yaml", id="unclosed"),
        pytest.param(b"\xff\xfe", "application/yaml", id="not-utf8"),
        pytest.param(b"!!python/object:os.system ls", "application/yaml", id="tag"),
    ],
)  # fmt: skip
def test_hostile_policy_document_is_400(
    dev_broker: DevBroker, admin: str, body: bytes, media: str
) -> None:
    started = time.monotonic()

    response = put_policy(dev_broker.client, admin, "hostile", body, media)

    assert_precise_client_error(response, 400)
    assert time.monotonic() - started < 5


def test_a_cron_expression_of_words_is_refused(
    dev_broker: DevBroker, admin: str
) -> None:
    document = (
        "secrets:\n  hostile/cron:\n    rotation:\n      cron: 'every day at 3'\n"
        "      grace: 1h\n      generator: {type: random}\n"
    )

    response = put_policy(
        dev_broker.client, admin, "cron", document.encode(), "application/yaml"
    )

    assert_precise_client_error(response, 400)


@pytest.mark.parametrize(
    "media",
    ["image/png", "text/plain", "application/x-www-form-urlencoded",
     "application/yaml; charset=latin-1", ""],
    ids=["png", "text", "form", "latin-1", "blank"],
)  # fmt: skip
def test_a_policy_of_an_unknown_media_type_is_415(
    dev_broker: DevBroker, admin: str, media: str
) -> None:
    response = put_policy(dev_broker.client, admin, "media", b"services: {}\n", media)

    assert_precise_client_error(response, 415)
    assert "application/json" in response.json()["error_description"]
    assert "application/yaml" in response.json()["error_description"]
    listed = dev_broker.client.request("GET", "policies", headers=bearer(admin))
    assert "media" not in [policy["name"] for policy in listed.json()["policies"]]


@pytest.mark.parametrize(
    "media",
    ["application/yaml", "application/x-yaml", "text/yaml",
     "application/json; charset=UTF-8", "Application/YAML"],
)  # fmt: skip
def test_a_policy_in_an_accepted_media_type_is_applied(
    dev_broker: DevBroker, admin: str, media: str
) -> None:
    body = b'{"services": {}}'

    response = put_policy(dev_broker.client, admin, "media-ok", body, media)

    assert response.status_code == 200, response.text


def test_a_policy_of_10000_services_is_answered_and_the_broker_keeps_working(
    dev_broker: DevBroker, admin: str
) -> None:
    services = {f"svc-{index}": {"secrets": {"read": [f"team{index}/*"]}}
                for index in range(10_000)}  # fmt: skip
    body = json.dumps({"services": services}).encode()

    try:
        response = put_policy(
            dev_broker.client, admin, "huge", body, "application/json", timeout=60
        )
        token = dev_broker.client.token("admin", ADMIN_SECRET)
    finally:
        dev_broker.client.request("DELETE", "policies/huge", headers=bearer(admin))

    assert response.status_code in (200, 400, 413), response.text
    assert token.status_code == 200


class ScratchBroker(BrokerProcess):
    """A broker a test may leave busy: it is killed, not asked to stop."""

    def kill(self) -> None:
        os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait()


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[tuple[ScratchBroker, str]]:
    process = ScratchBroker(tmp_path, ["--dev", "--dev-admin-secret", ADMIN_SECRET], {})
    client = BrokerClient(process.url)
    try:
        yield process, client.access_token("admin", ADMIN_SECRET)
    finally:
        client.close()
        process.kill()


def test_deeply_nested_yaml_policy_is_refused_quickly(
    scratch: tuple[ScratchBroker, str],
) -> None:
    process, token = scratch
    body = b"a: " + b"[" * 5000 + b"]" * 5000

    response = httpx.put(
        f"{process.url}/v1/dev/policies/deep",
        content=body,
        headers={**bearer(token), "Content-Type": "application/yaml"},
        timeout=5,
    )

    assert_precise_client_error(response, 400)
