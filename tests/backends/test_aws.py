"""What only the aws backend shows: AWS limits, labels, paging, throttling and
error translation, against moto's Secrets Manager on a real port.

Faults are injected with botocore's own event hooks on the client the backend
uses (`before-send` answers in place of the server, `after-call` rewrites a
parsed answer), so every other request still reaches the real server.
"""

from __future__ import annotations

import inspect
import json
import logging
import random
import socket
import threading
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import botocore.exceptions as boto  # type: ignore[import-untyped]
import botocore.session  # type: ignore[import-untyped]
import pytest
from botocore.awsrequest import AWSResponse  # type: ignore[import-untyped]
from botocore.retries import standard  # type: ignore[import-untyped]
from sqlalchemy import create_engine

from backends import aws
from backends.aws import AwsBackend, AwsConfig, AwsFailure
from backends.base import ABSENT, Stage
from backends.registry import BackendContext, build, parse_config
from service.clock import SystemClock
from service.crypto import Envelope, KeyEncryptionKey
from service.errors import (
    BackendError,
    BackendUnauthorized,
    BackendUnavailable,
    ConfigurationError,
    Conflict,
    InvalidRequest,
    PayloadTooLarge,
    PreconditionFailed,
    SecretNotFound,
    Throttled,
    TokenBrokerError,
    VersionDeleted,
    VersionDisabled,
)
from service.sensitive import Sensitive
from tests.backends.providers import Providers
from tests.backends.providers.aws import Provider

# The errors AWS lists as common to every service's JSON API, and those
# botocore's standard retry mode treats as throttling or transient.
COMMON_ERROR_CODES = [
    "AccessDeniedException",
    "IncompleteSignature",
    "InternalFailure",
    "InvalidAction",
    "InvalidClientTokenId",
    "InvalidParameterCombination",
    "InvalidParameterValue",
    "InvalidQueryParameter",
    "MalformedQueryString",
    "MissingAuthenticationToken",
    "MissingParameter",
    "NotAuthorized",
    "OptInRequired",
    "RequestExpired",
    "ServiceUnavailable",
    "ThrottlingException",
    "UnrecognizedClientException",
    "ValidationError",
    "ValidationException",
    "ExpiredTokenException",
    "InvalidSignatureException",
    "SerializationException",
    "UnknownOperationException",
]
BOTOCORE_RETRY_CODES = [
    *standard.ThrottledRetryableChecker._THROTTLED_ERROR_CODES,
    *standard.TransientRetryableChecker._TRANSIENT_ERROR_CODES,
]

# botocore errors no Secrets Manager call of ours can raise: other services'
# features (S3, waiters, paginators, stubs, uploads) and the model loader.
NOT_RAISED_BY_OUR_CALLS = {
    "ApiVersionNotFoundError",
    "AwsChunkedWrapperError",
    "DataNotFoundError",
    "InvalidChecksumConfigError",
    "InvalidDefaultsMode",
    "InvalidEndpointDiscoveryConfigurationError",
    "InvalidExpressionError",
    "InvalidHostLabelError",
    "InvalidIMDSEndpointError",
    "InvalidIMDSEndpointModeError",
    "InvalidProxiesConfigError",
    "InvalidS3AddressingStyleError",
    "InvalidS3UsEast1RegionalEndpointConfigError",
    "InvalidSTSRegionalEndpointsConfigError",
    "MD5UnavailableError",
    "MissingDependencyException",
    "OperationNotPageableError",
    "PaginationError",
    "StubAssertionError",
    "StubResponseError",
    "UnStubbedResponseError",
    "UnknownClientMethodError",
    "UnknownServiceError",
    "UnknownServiceStyle",
    "UnknownSignatureVersionError",
    "UnknownTokenProviderError",
    "UnseekableStreamError",
    "UnsupportedOutpostResourceError",
    "UnsupportedS3AccesspointConfigurationError",
    "UnsupportedS3ArnError",
    "UnsupportedS3ConfigurationError",
    "UnsupportedS3ControlArnError",
    "UnsupportedS3ControlConfigurationError",
    "UnsupportedServiceProtocolsError",
    "UnsupportedSignatureVersionError",
    "WaiterConfigError",
    "WaiterError",
}


@pytest.fixture
def provider(providers: Providers) -> Provider:
    started: Provider = providers.get("aws")
    return started


@pytest.fixture
def config(provider: Provider) -> AwsConfig:
    return provider.config()


@pytest.fixture
def client(provider: Provider, config: AwsConfig) -> Any:
    """The client the `backend` fixture uses, for hooks and for arranging."""
    return provider.client(config)


@pytest.fixture
def backend(provider: Provider, config: AwsConfig, client: Any) -> AwsBackend:
    return provider.new_backend(config, client=client)


class _Body:
    """The raw body of a synthetic response, as botocore reads it."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_options: Any) -> Iterator[bytes]:
        yield self._data


def aws_error(code: str, message: str = "", status: int = 400) -> AWSResponse:
    """An error answer as Secrets Manager sends it, to return from `before-send`."""
    body = json.dumps({"__type": code, "message": message}).encode()
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "x-amzn-RequestId": "injected-fault",
    }
    return AWSResponse("https://fault.invalid/", status, headers, _Body(body))


def on(client: Any, event: str, operation: str, handler: Callable[..., Any]) -> None:
    client.meta.events.register(f"{event}.secrets-manager.{operation}", handler)


def write(backend: AwsBackend, path: str, value: bytes, **options: Any) -> str:
    return backend.write(path, Sensitive(value), binary=False, **options).version


def test_listing_pages_through_250_secrets_with_pages_of_100(
    backend: AwsBackend, client: Any, config: AwsConfig
) -> None:
    """Case C18(a): every page is followed and no name comes twice."""
    names = {f"many/s{index:03d}" for index in range(250)}
    for name in names:
        client.create_secret(Name=config.name_prefix + name, SecretString="x")

    seen: list[str] = []
    token = None
    for _page in range(20):
        page = backend.list("many/", page_size=100, page_token=token)
        seen.extend(item.path for item in page.items)
        token = page.next_token
        if token is None:
            break

    assert len(seen) == 250
    assert set(seen) == names


def test_repeated_continuation_token_stops_the_listing(
    backend: AwsBackend, client: Any
) -> None:
    """Case C18(e): a store that repeats its token fails the listing, never spins."""
    for index in range(5):
        write(backend, f"loop/s{index}", b"x")
    first: list[str] = []

    def repeat_first_token(parsed: dict[str, Any], **_: Any) -> None:
        if parsed.get("NextToken"):
            first.append(first[0] if first else parsed["NextToken"])
            parsed["NextToken"] = first[0]

    on(client, "after-call", "ListSecrets", repeat_first_token)
    page = backend.list("loop/", page_size=2)

    with pytest.raises(BackendError, match="repeated a continuation token"):
        backend.list("loop/", page_size=2, page_token=page.next_token)


def test_page_token_of_another_listing_is_refused(backend: AwsBackend) -> None:
    for index in range(3):
        write(backend, f"a/s{index}", b"x")
    page = backend.list("a/", page_size=1)

    with pytest.raises(InvalidRequest):
        backend.list("b/", page_size=1, page_token=page.next_token)
    with pytest.raises(InvalidRequest):
        backend.list("a/", page_size=1, page_token="not-a-token")


def test_sibling_prefix_environment_is_not_listed(provider: Provider) -> None:
    """Case C29: name prefixes end in `/`, so `app/` never sees `app-prod/`."""
    root = provider.config().name_prefix
    app = provider.new_backend(provider.config(name_prefix=f"{root}app/"))
    prod = provider.new_backend(provider.config(name_prefix=f"{root}app-prod/"))
    write(app, "db", b"app")
    write(prod, "db", b"prod")

    page = app.list("", page_size=10)

    assert [item.path for item in page.items] == ["db"]
    assert app.read("db").value.reveal() == b"app"


def test_listing_drops_names_a_contains_filter_would_let_through(
    backend: AwsBackend, client: Any, config: AwsConfig
) -> None:
    """Case C29: an emulator that filters by "contains" cannot leak a sibling."""
    write(backend, "app/db", b"x")
    sibling = {"Name": f"other/{config.name_prefix}app/db", "ARN": "arn:x"}

    def add_sibling(parsed: dict[str, Any], **_: Any) -> None:
        parsed["SecretList"].append(sibling)

    on(client, "after-call", "ListSecrets", add_sibling)
    page = backend.list("app/", page_size=10)

    assert [item.path for item in page.items] == ["app/db"]


def test_value_at_the_aws_limit_round_trips(backend: AwsBackend) -> None:
    """Case C26: 65,536 bytes is AWS's limit and is accepted."""
    value = b"a" * 65536

    write(backend, "big", value)

    assert backend.read("big").value.reveal() == value


@pytest.mark.parametrize(
    ("value", "size"),
    [
        pytest.param(b"a" * 65537, 65537, id="one-byte-over"),
        pytest.param(("€" * 22000).encode(), 66000, id="22000-three-byte-chars"),
        pytest.param(b"a" * 70 * 1024, 71680, id="70-KiB"),
    ],
)
def test_value_over_the_limit_is_refused_before_any_call(
    backend: AwsBackend, client: Any, value: bytes, size: int
) -> None:
    """Case C26: the limit is in bytes, and nothing reaches AWS."""
    calls: list[str] = []
    on(client, "before-send", "*", lambda **_: calls.append("sent"))

    with pytest.raises(PayloadTooLarge) as refused:
        write(backend, "big", value)

    assert f"{size} bytes" in refused.value.message
    assert "65536 bytes" in refused.value.message
    assert calls == []


def test_binary_that_looks_like_base64_is_stored_as_given(
    backend: AwsBackend, client: Any, config: AwsConfig
) -> None:
    """Case C25(b): SecretBinary holds b"QUJD", decoded once, never twice."""
    backend.write("bin", Sensitive(b"QUJD"), binary=True)

    stored = client.get_secret_value(
        SecretId=config.name_prefix + "bin", VersionStage="AWSCURRENT"
    )

    assert stored["SecretBinary"] == b"QUJD"
    assert backend.read("bin").value.reveal() == b"QUJD"


def test_text_that_is_not_utf8_is_refused(backend: AwsBackend) -> None:
    with pytest.raises(InvalidRequest, match="not UTF-8"):
        write(backend, "text", b"\xff\xfe")


def test_bulk_reads_come_through_intermittent_throttling(
    backend: AwsBackend, client: Any, config: AwsConfig
) -> None:
    """Case C27: 30% throttled calls; every value arrives, no secret is fetched
    more than five times."""
    paths = [f"bulk/s{index:03d}" for index in range(100)]
    for path in paths:
        client.create_secret(Name=config.name_prefix + path, SecretString=path)
    lock = threading.Lock()
    calls: Counter[str] = Counter()
    streak: Counter[str] = Counter()
    chance = random.Random(27)

    def throttle(request: Any, **_: Any) -> AWSResponse | None:
        secret = json.loads(request.body)["SecretId"]
        with lock:
            calls[secret] += 1
            # At most three in a row, so a fifth attempt is never needed.
            if streak[secret] < 3 and chance.random() < 0.3:
                streak[secret] += 1
                return aws_error("ThrottlingException", "Rate exceeded")
        return None

    on(client, "before-send", "GetSecretValue", throttle)
    with ThreadPoolExecutor(max_workers=10) as pool:
        values = list(pool.map(lambda p: backend.read(p).value.reveal(), paths))

    assert values == [path.encode() for path in paths]
    assert max(calls.values()) <= 5
    assert sum(streak.values()) > 0


def test_persistent_throttling_answers_throttled_after_max_attempts(
    provider: Provider,
) -> None:
    config = provider.config(max_attempts=3)
    client = provider.client(config)
    backend = provider.new_backend(config, client=client)
    write(backend, "hot", b"x")
    calls: list[str] = []

    def always(**_: Any) -> AWSResponse:
        calls.append("throttled")
        return aws_error("ThrottlingException", "Rate exceeded")

    on(client, "before-send", "GetSecretValue", always)
    with pytest.raises(Throttled) as throttled:
        backend.read("hot")

    assert len(calls) == 3
    assert throttled.value.retry_after is not None
    assert throttled.value.retry_after > 0


def service_model_error_codes() -> set[str]:
    model = botocore.session.get_session().get_service_model("secretsmanager")
    return {
        shape.metadata.get("error", {}).get("code", shape.name)
        for operation in model.operation_names
        for shape in model.operation_model(operation).error_shapes
    }


def test_every_error_code_aws_can_answer_has_a_mapping() -> None:
    """The service model, the common AWS errors and botocore's retry codes."""
    codes = service_model_error_codes() | set(COMMON_ERROR_CODES)
    codes |= set(BOTOCORE_RETRY_CODES)

    assert sorted(codes - set(aws.ERROR_CODES)) == []


def test_every_botocore_error_a_call_can_raise_has_a_mapping() -> None:
    """Only the catch-all may be left for errors our calls cannot raise."""
    mapped = tuple(cls for cls, _kind in aws.BOTOCORE_ERRORS[:-1])
    classes = [
        cls
        for _name, cls in inspect.getmembers(boto, inspect.isclass)
        if issubclass(cls, boto.BotoCoreError) and cls is not boto.BotoCoreError
    ]

    unmapped = [
        cls.__name__
        for cls in classes
        if not issubclass(cls, mapped) and cls.__name__ not in NOT_RAISED_BY_OUR_CALLS
    ]

    assert unmapped == []


def client_error(code: str, message: str = "", status: int = 400) -> Any:
    response = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "r-1"},
    }
    return boto.ClientError(response, "GetSecretValue")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (client_error("ResourceNotFoundException"), SecretNotFound),
        (client_error("ResourceExistsException"), PreconditionFailed),
        (
            client_error("InvalidRequestException", "it was marked for deletion"),
            VersionDeleted,
        ),
        (client_error("InvalidRequestException", "rotation is off"), Conflict),
        (client_error("InvalidParameterException"), InvalidRequest),
        (client_error("AccessDeniedException"), BackendUnauthorized),
        (client_error("ExpiredTokenException"), BackendUnauthorized),
        (client_error("ThrottlingException"), Throttled),
        (client_error("DecryptionFailure"), BackendError),
        (client_error("SomethingNewException"), BackendError),
        (boto.EndpointConnectionError(endpoint_url="https://x"), BackendUnavailable),
        (boto.ConnectTimeoutError(endpoint_url="https://x"), BackendUnavailable),
        (boto.ReadTimeoutError(endpoint_url="https://x"), BackendUnavailable),
        (boto.NoCredentialsError(), BackendUnauthorized),
        (boto.NoRegionError(), BackendError),
    ],
    ids=lambda item: type(item).__name__ if isinstance(item, Exception) else "",
)
def test_translation_picks_the_most_specific_error(
    error: Exception, expected: type[TokenBrokerError]
) -> None:
    assert type(aws.translate(error, "app/db")) is expected


def test_error_messages_and_traces_never_quote_botocore_text(
    backend: AwsBackend, client: Any
) -> None:
    """Case C17(d): the store's text echoes a URL with a token; we drop it."""
    canary = "tok-canary-8c1f20"
    message = f"denied for https://sm.invalid/?X-Amz-Security-Token={canary}"
    on(
        client,
        "before-send",
        "GetSecretValue",
        lambda **_: aws_error("AccessDeniedException", message),
    )

    with pytest.raises(BackendUnauthorized) as refused:
        backend.read("app/db")

    trace = "".join(traceback.format_exception(refused.value))
    assert canary not in str(refused.value)
    assert canary not in trace
    assert isinstance(refused.value.__cause__, AwsFailure)


def test_botocore_debug_logging_never_shows_a_value(
    backend: AwsBackend, caplog: pytest.LogCaptureFixture
) -> None:
    """botocore prints bodies at DEBUG; the backend keeps them out (case C17)."""
    canary = "canary-value-0e7b44"
    caplog.set_level(logging.DEBUG, logger="botocore")

    write(backend, "app/db", canary.encode())
    backend.read("app/db")

    assert any(r.name.startswith("botocore") for r in caplog.records)
    assert canary not in caplog.text


def test_throttled_store_still_passes_its_check(provider: Provider) -> None:
    """An answer, even "slow down", proves the store is reachable."""
    config = provider.config(max_attempts=1)
    client = provider.client(config)
    backend = provider.new_backend(config, client=client)
    on(
        client,
        "before-send",
        "ListSecrets",
        lambda **_: aws_error("ThrottlingException", "Rate exceeded"),
    )

    backend.check()


def test_secret_scheduled_for_deletion_reads_as_deleted(
    backend: AwsBackend, client: Any, config: AwsConfig
) -> None:
    write(backend, "old", b"x")
    client.delete_secret(SecretId=config.name_prefix + "old", RecoveryWindowInDays=7)

    with pytest.raises(VersionDeleted, match="scheduled for deletion"):
        backend.read("old")


@pytest.mark.parametrize(
    "expected",
    [
        pytest.param(None, id="plain"),
        pytest.param(ABSENT, id="create-if-absent"),
        pytest.param("current", id="compare-and-set"),
    ],
)
def test_write_to_a_secret_scheduled_for_deletion_is_a_conflict(
    backend: AwsBackend, client: Any, config: AwsConfig, expected: object
) -> None:
    """Case C05b: the name is held by a deleted secret; 409 says so."""
    current = write(backend, "old", b"x")
    client.delete_secret(SecretId=config.name_prefix + "old", RecoveryWindowInDays=7)
    precondition = current if expected == "current" else expected

    with pytest.raises(Conflict, match="scheduled for deletion"):
        write(backend, "old", b"y", expected_version=precondition)


def test_unreachable_endpoint_is_unavailable(provider: Provider) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        config = provider.config(
            endpoint_url=f"http://127.0.0.1:{port}", max_attempts=1, timeout_seconds=2
        )
        backend = provider.new_backend(config)

        with pytest.raises(BackendUnavailable):
            backend.check()


def test_disabling_takes_every_label_off_and_reads_answer_disabled(
    backend: AwsBackend, client: Any, config: AwsConfig
) -> None:
    first = write(backend, "app/db", b"one")
    write(backend, "app/db", b"two")

    backend.set_enabled("app/db", first, False)

    labels = client.describe_secret(SecretId=config.name_prefix + "app/db")
    assert labels["VersionIdsToStages"].get(first, []) == []
    with pytest.raises(VersionDisabled):
        backend.read("app/db", stage=Stage.PREVIOUS)
    with pytest.raises(VersionDisabled):
        backend.read("app/db", version=first)
    assert [v.enabled for v in backend.versions("app/db")] == [False, True]


def test_disabling_prunes_tags_of_versions_aws_has_purged(
    backend: AwsBackend, client: Any, config: AwsConfig
) -> None:
    """A secret holds at most 50 tags; those of purged versions are dropped."""
    first = write(backend, "app/db", b"one")
    write(backend, "app/db", b"two")
    name = config.name_prefix + "app/db"
    purged = [f"{index:036d}" for index in range(aws.PRUNE_TAGS_AT)]
    tags = [{"Key": aws.DISABLED_TAG + v, "Value": "true"} for v in purged]
    client.tag_resource(SecretId=name, Tags=tags)

    backend.set_enabled("app/db", first, False)

    left = client.describe_secret(SecretId=name).get("Tags", [])
    assert [tag["Key"] for tag in left] == [aws.DISABLED_TAG + first]


def test_current_version_cannot_be_disabled(backend: AwsBackend) -> None:
    current = write(backend, "app/db", b"one")

    with pytest.raises(Conflict, match="current"):
        backend.set_enabled("app/db", current, False)
    assert backend.read("app/db").value.reveal() == b"one"


def test_disabled_version_cannot_be_promoted(backend: AwsBackend) -> None:
    first = write(backend, "app/db", b"one")
    write(backend, "app/db", b"two")
    backend.set_enabled("app/db", first, False)

    with pytest.raises(VersionDisabled):
        backend.promote("app/db", first)
    assert backend.read("app/db").value.reveal() == b"two"


def test_stale_compare_and_set_leaves_no_labelled_version_behind(
    provider: Provider, backend: AwsBackend, client: Any, config: AwsConfig
) -> None:
    """A plain write lands between the CAS's put and its swap; the CAS loses."""
    base = write(backend, "app/db", b"base")
    rival = provider.new_backend(config)
    landed: list[str] = []

    def rival_writes_first(**_: Any) -> None:
        if not landed:
            landed.append(write(rival, "app/db", b"plain"))

    on(client, "before-call", "UpdateSecretVersionStage", rival_writes_first)
    with pytest.raises(PreconditionFailed):
        write(backend, "app/db", b"cas", expected_version=base)

    stages = client.describe_secret(SecretId=config.name_prefix + "app/db")
    labelled = {v for v, labels in stages["VersionIdsToStages"].items() if labels}
    assert labelled == {base, landed[0]}
    assert backend.read("app/db").value.reveal() == b"plain"


def test_abandoned_compare_and_set_blocks_only_until_it_is_old(
    provider: Provider, client: Any, config: AwsConfig
) -> None:
    """A writer that died between put and swap holds the base only for a while."""
    backend = provider.new_backend(config, client=client)
    base = write(backend, "app/db", b"base")
    name = config.name_prefix + "app/db"
    crashed, next_id = aws.cas_version_ids(name, base)[:2]
    client.put_secret_value(
        SecretId=name,
        SecretString="crashed",
        ClientRequestToken=crashed,
        VersionStages=[aws.STAGED],
    )

    with pytest.raises(PreconditionFailed, match="in progress"):
        write(backend, "app/db", b"mine", expected_version=base)
    patient = provider.new_backend(config, abandoned_after=0.0)
    version = write(patient, "app/db", b"mine", expected_version=base)

    assert version == next_id
    assert backend.read("app/db").value.reveal() == b"mine"


def test_create_if_absent_names_the_current_version(backend: AwsBackend) -> None:
    current = write(backend, "app/db", b"one")

    with pytest.raises(PreconditionFailed, match=current):
        write(backend, "app/db", b"two", expected_version=ABSENT)


def test_pending_write_to_a_new_secret_is_current_as_well(
    backend: AwsBackend,
) -> None:
    """AWS makes a secret's first version current, whatever label it asked for."""
    info = backend.write("fresh", Sensitive(b"one"), binary=False, stage=Stage.PENDING)

    assert info.stages == {Stage.CURRENT, Stage.PENDING}
    assert backend.read("fresh").version == info.version


def test_promote_takes_pending_off_a_version_already_current(
    backend: AwsBackend,
) -> None:
    """Case C01 variant: PENDING left on CURRENT by a finished rotation."""
    info = backend.write("fresh", Sensitive(b"one"), binary=False, stage=Stage.PENDING)

    backend.promote("fresh", info.version)

    with pytest.raises(SecretNotFound):
        backend.read("fresh", stage=Stage.PENDING)


def test_new_current_value_clears_a_stray_pending_version(
    backend: AwsBackend,
) -> None:
    """Case C01(e): an admin's write ends a rotation that failed half-way."""
    write(backend, "app/db", b"one")
    write(backend, "app/db", b"stray", stage=Stage.PENDING)

    admin = write(backend, "app/db", b"admin")

    assert backend.read("app/db").version == admin
    with pytest.raises(SecretNotFound):
        backend.read("app/db", stage=Stage.PENDING)


def test_keyed_write_replayed_after_later_writes_answers_the_first(
    backend: AwsBackend,
) -> None:
    first = write(backend, "app/db", b"one", idempotency_key="rotation-7")
    write(backend, "app/db", b"two")

    again = write(backend, "app/db", b"one", idempotency_key="rotation-7")

    assert again == first
    assert backend.read("app/db").value.reveal() == b"two"


def test_calls_are_signed_with_the_assumed_role(provider: Provider) -> None:
    config = provider.config(
        role_arn="arn:aws:iam::123456789012:role/broker",
        external_id="broker-ext-1",
        sts_endpoint_url=provider.endpoint_url,
    )
    client = aws.make_client(config, provider.session())
    signatures: list[str] = []

    def record(request: Any, **_: Any) -> None:
        signatures.append(_header(request, "Authorization"))
        signatures.append(_header(request, "X-Amz-Security-Token"))

    on(client, "before-send", "ListSecrets", record)
    provider.new_backend(config, client=client).check()

    authorization, session_token = signatures
    assert "Credential=testing/" not in authorization
    assert session_token


def _header(request: Any, name: str) -> str:
    value = request.headers.get(name, "")
    return value.decode() if isinstance(value, bytes) else str(value)


def test_registry_builds_the_backend_on_the_default_credential_chain(
    provider: Provider, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """No keys in configuration or code: without any in the chain, calls fail."""
    for variable in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    options = {
        "type": "aws",
        "region": "eu-west-1",
        "endpoint_url": provider.endpoint_url,
        "max_attempts": 1,
    }
    context = BackendContext(
        "prod",
        create_engine("sqlite://"),
        Envelope(KeyEncryptionKey.generate()),
        SystemClock(),
    )
    backend = build("aws-main", parse_config("aws-main", options), context)
    with pytest.raises(BackendUnauthorized):
        backend.check()

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "chain-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "chain-secret")
    build("aws-main", parse_config("aws-main", options), context).check()


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"name_prefix": "app"}, id="prefix-without-delimiter"),
        pytest.param({"external_id": "x-1"}, id="external-id-without-role"),
        pytest.param({"max_value_bytes": 65537}, id="limit-above-aws"),
        pytest.param({"access_key": "AKIA"}, id="keys-in-config"),
        pytest.param({"region": ""}, id="empty-region"),
    ],
)
def test_unusable_configuration_is_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        parse_config("aws-main", {"type": "aws", "region": "eu-west-1"} | options)
