"""Translating botocore's failures into `service.errors`: the AWS error boundary.

Every Secrets Manager call leaves the backend through `AwsBackend._call`, which
hands any botocore failure to `translate` here and chains `summarize`'s
`AwsFailure` as the cause. Nothing else in the AWS backend interprets a botocore
error.

    ClientError (the service answered)  ->  by error code, `ERROR_CODES`
    BotoCoreError (the client failed)   ->  by class, most specific first,
                                            `BOTOCORE_ERRORS`
    anything unmapped                   ->  BackendError, logged at ERROR

`test_aws.py` fails when the service model, the common AWS error codes or
botocore's exception classes grow a member with no mapping here. botocore's own
message text can echo request parameters (a signed URL, a token), so it is never
quoted: messages are built from the error code and the path only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import botocore.exceptions as boto  # type: ignore[import-untyped]
import structlog

from service.errors import (
    BackendError,
    BackendUnauthorized,
    BackendUnavailable,
    Conflict,
    InvalidRequest,
    PreconditionFailed,
    SecretNotFound,
    Throttled,
    TokenBrokerError,
    VersionDeleted,
)

log = structlog.get_logger(__name__)

_CODE: Final = re.compile(r"[A-Za-z][A-Za-z0-9.]{0,63}")


class AwsFailure(Exception):
    """What botocore reported, minus its message, which can echo parameters."""


# Error codes AWS Secrets Manager answers, by the condition they report.
# `test_aws.py` fails when the service model or the common AWS codes grow one
# that is missing here.
ERROR_CODES: Final[Mapping[str, type[TokenBrokerError]]] = {
    code: kind
    for codes, kind in [
        # The service model's own errors.
        ("ResourceNotFoundException", SecretNotFound),
        ("ResourceExistsException", PreconditionFailed),
        (
            "InvalidRequestException PreconditionNotMetException "
            "LimitExceededException",
            Conflict,
        ),
        (
            "InvalidParameterException InvalidNextTokenException "
            "MalformedPolicyDocumentException PublicPolicyException",
            InvalidRequest,
        ),
        ("DecryptionFailure EncryptionFailure InternalServiceError", BackendError),
        # Errors every AWS JSON service can answer.
        (
            "AccessDeniedException UnrecognizedClientException InvalidClientTokenId "
            "ExpiredTokenException ExpiredToken InvalidSignatureException "
            "SignatureDoesNotMatch IncompleteSignature MissingAuthenticationToken "
            "MissingAuthenticationTokenException RequestExpired NotAuthorized "
            "OptInRequired",
            BackendUnauthorized,
        ),
        (
            "ThrottlingException Throttling ThrottledException "
            "TooManyRequestsException RequestLimitExceeded RequestThrottled "
            "RequestThrottledException SlowDown PriorRequestNotComplete "
            "BandwidthLimitExceeded ProvisionedThroughputExceededException "
            "TransactionInProgressException EC2ThrottledException",
            Throttled,
        ),
        (
            "ServiceUnavailable ServiceUnavailableException RequestTimeout "
            "RequestTimeoutException",
            BackendUnavailable,
        ),
        (
            "ValidationException ValidationError InvalidParameterValue "
            "InvalidParameterCombination MissingParameter InvalidQueryParameter "
            "MalformedQueryString",
            InvalidRequest,
        ),
        (
            "InternalFailure InternalError SerializationException InvalidAction "
            "UnknownOperationException",
            BackendError,
        ),
    ]
    for code in codes.split()
}

_MESSAGES: Final[Mapping[type[TokenBrokerError], str]] = {
    PreconditionFailed: "{secret} or that version already exists ({code})",
    Conflict: "{secret} is not in a state that allows this ({code})",
    InvalidRequest: "AWS Secrets Manager rejected the request for {secret} ({code})",
    BackendUnauthorized: "AWS Secrets Manager refused the broker's key ({code})",
    BackendUnavailable: "AWS Secrets Manager cannot be reached ({code})",
    BackendError: "AWS Secrets Manager failed on {secret} ({code})",
}

# botocore's own exceptions, most specific first; the last row catches the rest.
BOTOCORE_ERRORS: Final[tuple[tuple[type[Exception], type[TokenBrokerError]], ...]] = (
    (boto.CapacityNotAvailableError, Throttled),
    (boto.ConnectionError, BackendUnavailable),
    (boto.HTTPClientError, BackendUnavailable),
    (boto.IncompleteReadError, BackendUnavailable),
    (boto.NoCredentialsError, BackendUnauthorized),
    (boto.PartialCredentialsError, BackendUnauthorized),
    (boto.CredentialRetrievalError, BackendUnauthorized),
    (boto.NoAuthTokenError, BackendUnauthorized),
    (boto.TokenRetrievalError, BackendUnauthorized),
    (boto.RefreshWithMFAUnsupportedError, BackendUnauthorized),
    (boto.MetadataRetrievalError, BackendUnauthorized),
    (boto.UnknownCredentialError, BackendUnauthorized),
    (boto.SSOError, BackendUnauthorized),
    (boto.LoginError, BackendUnauthorized),
    (boto.ParamValidationError, InvalidRequest),
    (boto.ValidationError, InvalidRequest),
    (boto.MissingParametersError, InvalidRequest),
    (boto.ProfileNotFound, BackendUnauthorized),
    (boto.ChecksumError, BackendError),
    (boto.FlexibleChecksumError, BackendError),
    # The client's own configuration (region, endpoint, retries) is unusable.
    (boto.BaseEndpointResolverError, BackendError),
    (boto.EndpointProviderError, BackendError),
    (boto.InvalidConfigError, BackendError),
    (boto.InvalidRetryConfigurationError, BackendError),
    (boto.InvalidEndpointConfigurationError, BackendError),
    (boto.InvalidDNSNameError, BackendError),
    (boto.UnknownRegionError, BackendError),
    (boto.ServiceNotInRegionError, BackendError),
    (boto.ConfigNotFound, BackendError),
    (boto.ConfigParseError, BackendError),
    (boto.BotoCoreError, BackendError),
)


def translate(
    error: Exception, path: str | None, subject: str | None = None
) -> TokenBrokerError:
    """The broker's error for a botocore failure; never quotes botocore's text.

    `subject` names what a not-found error is missing (`pending version`).
    """
    secret = "AWS Secrets Manager" if path is None else f"secret {path!r}"
    if isinstance(error, boto.ClientError):
        code = _code(error)
        kind = ERROR_CODES.get(code, BackendError)
        if kind is Conflict and code == "InvalidRequestException":
            message = str(error.response.get("Error", {}).get("Message", ""))
            if "delet" in message.lower():
                return VersionDeleted(scheduled_for_deletion(path or ""))
    else:
        code = type(error).__name__
        kind = next(
            (kind for cls, kind in BOTOCORE_ERRORS if isinstance(error, cls)),
            BackendError,
        )

    if kind is SecretNotFound:
        missing = f"has no {subject}" if subject else "does not exist"
        return SecretNotFound(f"{secret} {missing}")
    if kind is Throttled:
        return Throttled(
            f"AWS Secrets Manager is throttling requests for {secret} ({code})",
            retry_after=_retry_after(error),
        )
    return kind(_MESSAGES.get(kind, _MESSAGES[BackendError]).format(**locals()))


def summarize(error: Exception) -> AwsFailure:
    """The cause to chain: class, code, operation and request id, no message."""
    if isinstance(error, boto.ClientError):
        metadata = error.response.get("ResponseMetadata", {})
        return AwsFailure(
            f"{type(error).__name__} {_code(error)} from {error.operation_name} "
            f"(HTTP {metadata.get('HTTPStatusCode')}, "
            f"request {metadata.get('RequestId')})"
        )
    return AwsFailure(type(error).__name__)


def log_failure(
    backend: str, operation: str, translated: TokenBrokerError, error: Exception
) -> None:
    """WARNING for a degraded store, ERROR for the unexpected; nothing otherwise."""
    fields = {"backend": backend, "operation": operation, "error": translated.code}
    if isinstance(translated, Throttled | BackendUnavailable | BackendUnauthorized):
        log.warning("aws.call.degraded", **fields)
    elif type(translated) is BackendError:
        log.error("aws.call.failed", cause=summarize(error).args[0], **fields)


def _code(error: Any) -> str:
    code = str(error.response.get("Error", {}).get("Code", ""))
    return code if _CODE.fullmatch(code) else "UnrecognisedError"


def _retry_after(error: Exception) -> float:
    """Seconds a caller should wait: the server's hint, else botocore's next
    full-jitter backoff on average."""
    response = getattr(error, "response", {})
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    attempts: int = response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
    backoff = min(2.0**attempts, 20.0) / 2
    try:
        hinted = int(headers.get("x-amz-retry-after", "")) / 1000
    except ValueError:
        return backoff
    return max(backoff, hinted)


def scheduled_for_deletion(path: str) -> str:
    """The VersionDeleted message for a secret AWS is about to delete."""
    return (
        f"secret {path!r} is scheduled for deletion in AWS Secrets Manager; "
        "restore it to use it again"
    )
