"""Where the Azure SDK's errors become the broker's, and the transport guards.

`translate` is the one boundary: the first entry of `TRANSLATIONS` whose class
matches decides, most specific first, and every message is built here from the
operation's subject, never copied from the SDK (Key Vault errors may echo URLs
with query strings). A test fails when an exception class of `azure.core` or
`azure.identity` has no entry of its own.

Two pipeline policies sit between the SDK's retry and authentication policies,
so they see every attempt before a credential is attached: `SameOrigin` refuses
any request that would leave the vault's origin (a foreign `nextLink`, a
redirect), and `RetryAfterLimit` stops the retries when the vault asks for a
longer pause than the broker will wait.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    DecodeError,
    DeserializationError,
    HttpResponseError,
    IncompleteReadError,
    ODataV4Error,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ResourceNotModifiedError,
    ResponseNotReadError,
    SerializationError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
    StreamClosedError,
    StreamConsumedError,
    TooManyRedirectsError,
)
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.identity import AuthenticationRequiredError, CredentialUnavailableError

from service.errors import (
    BackendError,
    BackendUnauthorized,
    BackendUnavailable,
    Conflict,
    PayloadTooLarge,
    PreconditionFailed,
    SecretNotFound,
    Throttled,
    TokenBrokerError,
    VersionDisabled,
)

ERROR_CODE = re.compile(r"[A-Za-z0-9]{1,64}")


class ForeignHost(Exception):
    """A request was about to leave the configured vault's origin."""


class WaitTooLong(Exception):
    """The vault asked to wait longer than the broker is willing to."""

    def __init__(self, seconds: float) -> None:
        super().__init__("retry-after beyond the configured limit")
        self.seconds = seconds


# Any request and response types: these read only the URL and the headers.
class SameOrigin(SansIOHTTPPolicy[Any, Any]):
    """Refuses every request to another origin than the vault's, before auth."""

    def __init__(self, vault_url: str) -> None:
        super().__init__()
        self._origin = origin(vault_url)

    def on_request(self, request: PipelineRequest[Any]) -> None:
        if origin(request.http_request.url) != self._origin:
            raise ForeignHost()


class RetryAfterLimit(SansIOHTTPPolicy[Any, Any]):
    """Stops retrying when the vault asks for a longer pause than allowed."""

    def __init__(self, limit: float) -> None:
        super().__init__()
        self._limit = limit

    def on_response(
        self, request: PipelineRequest[Any], response: PipelineResponse[Any, Any]
    ) -> None:
        seconds = retry_after(response.http_response.headers)
        if seconds is not None and seconds > self._limit:
            raise WaitTooLong(seconds)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds a `Retry-After` (or `retry-after-ms`) header asks to wait."""
    lowered = {key.lower(): value for key, value in headers.items()}
    for header, scale in (
        ("retry-after", 1.0),
        ("retry-after-ms", 0.001),
        ("x-ms-retry-after-ms", 0.001),
    ):
        text = lowered.get(header, "").strip()
        if not text:
            continue
        try:
            return max(0.0, float(text) * scale)
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return None


# Error translation -------------------------------------------------------------

Rule = Callable[[Any, str], TokenBrokerError]


def _not_found(error: Any, subject: str) -> TokenBrokerError:
    return SecretNotFound(f"{subject} was not found in Azure Key Vault")


def _conflict(error: Any, subject: str) -> TokenBrokerError:
    return Conflict(f"Azure Key Vault refused {subject} as conflicting")


def _modified(error: Any, subject: str) -> TokenBrokerError:
    return PreconditionFailed(f"{subject} changed in Azure Key Vault")


def _unauthorized(error: Any, subject: str) -> TokenBrokerError:
    return BackendUnauthorized(
        f"Azure Key Vault or Entra ID refused the broker's credential for {subject}"
    )


def _no_credential(error: Any, subject: str) -> TokenBrokerError:
    return BackendUnauthorized(f"no Azure credential is available for {subject}")


def _unavailable(error: Any, subject: str) -> TokenBrokerError:
    return BackendUnavailable(f"Azure Key Vault cannot be reached for {subject}")


def _unexpected(error: Any, subject: str) -> TokenBrokerError:
    return BackendError(f"Azure Key Vault failed unexpectedly for {subject}")


def _foreign_host(error: Any, subject: str) -> TokenBrokerError:
    return BackendError(
        f"Azure Key Vault sent a link to another host for {subject}; the broker "
        "does not follow it and the listing is incomplete"
    )


def _wait_too_long(error: Any, subject: str) -> TokenBrokerError:
    return Throttled(
        f"Azure Key Vault is throttling {subject} longer than the broker waits",
        retry_after=error.seconds,
    )


def _by_status(error: Any, subject: str) -> TokenBrokerError:
    status = getattr(error, "status_code", None)
    if status == 404:
        return _not_found(error, subject)
    if status == 409:
        return _conflict(error, subject)
    if status == 412:
        return _modified(error, subject)
    if status == 429:
        response = getattr(error, "response", None)
        seconds = retry_after(response.headers) if response is not None else None
        return Throttled(f"Azure Key Vault is throttling {subject}", seconds)
    if status == 403 and error_code(error, inner=True) == "SecretDisabled":
        return VersionDisabled(f"the version asked for of {subject} is disabled")
    if status in (401, 403):
        return _unauthorized(error, subject)
    if status == 413:
        return PayloadTooLarge(f"Azure Key Vault refused {subject} as too large")
    if status in (500, 502, 503, 504):
        return _unavailable(error, subject)
    return _unexpected(error, subject)


# Most specific first: the first class that matches decides.
TRANSLATIONS: tuple[tuple[type[BaseException], Rule], ...] = (
    (ForeignHost, _foreign_host),
    (WaitTooLong, _wait_too_long),
    (AuthenticationRequiredError, _unauthorized),
    (CredentialUnavailableError, _no_credential),
    (ClientAuthenticationError, _unauthorized),
    (ResourceNotFoundError, _not_found),
    (ResourceExistsError, _conflict),
    (ResourceModifiedError, _modified),
    (ResourceNotModifiedError, _unexpected),
    (TooManyRedirectsError, _unexpected),
    (IncompleteReadError, _unavailable),
    (DecodeError, _unexpected),
    (ODataV4Error, _by_status),
    (HttpResponseError, _by_status),
    (ServiceRequestTimeoutError, _unavailable),
    (ServiceRequestError, _unavailable),
    (ServiceResponseTimeoutError, _unavailable),
    (ServiceResponseError, _unavailable),
    (StreamClosedError, _unexpected),
    (StreamConsumedError, _unexpected),
    (ResponseNotReadError, _unexpected),
    (SerializationError, _unexpected),
    (DeserializationError, _unexpected),
    (AzureError, _unexpected),
    # The SDK raises ValueError for a challenge it will not answer.
    (ValueError, _unexpected),
)
TRANSLATED = tuple(kind for kind, _rule in TRANSLATIONS)

_LOG_LEVELS: dict[type[TokenBrokerError], str] = {
    SecretNotFound: "debug",
    VersionDisabled: "debug",
    Conflict: "info",
    PreconditionFailed: "info",
    Throttled: "warning",
    BackendUnavailable: "warning",
}


def log_level(error: TokenBrokerError) -> str:
    """The level a failed request is logged at: ERROR unless it is expected."""
    return _LOG_LEVELS.get(type(error), "error")


def translate(error: BaseException, subject: str) -> TokenBrokerError:
    """The broker's error for an SDK error; messages are built, never copied."""
    for kind, rule in TRANSLATIONS:
        if isinstance(error, kind):
            return rule(error, subject)
    return _unexpected(error, subject)


def error_code(error: BaseException, *, inner: bool = False) -> str | None:
    """Key Vault's error code, only when it is a plain identifier."""
    details = getattr(error, "error", None)
    code = getattr(details, "code", None)
    if inner:
        innererror = getattr(details, "innererror", None) or {}
        code = innererror.get("code") if isinstance(innererror, Mapping) else None
    return code if isinstance(code, str) and ERROR_CODE.fullmatch(code) else None


def origin(url: str) -> tuple[str, str, int]:
    """Scheme, host and port of `url`, with the default port filled in."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return ("", "", 0)
    scheme = parts.scheme.lower()
    return (
        scheme,
        (parts.hostname or "").lower(),
        port or (443 if scheme == "https" else 80),
    )
