"""The one exception hierarchy of tokenbroker.

Every error the broker raises on purpose derives from `TokenBrokerError` and carries
the HTTP status and the stable error code the API answers with. Messages are written
for the caller and never contain a secret value, a client secret or a token: callers
build them from names, versions and sizes only. What only an operator may see (a
store's URL or host, a path inside it, the store's own words) goes into `detail`,
which is logged and never answered.

    TokenBrokerError
    ├── ConfigurationError          start-up refused: the configuration is unusable
    ├── InvalidRequest              400 the request is malformed
    │   └── PolicyInvalid           400 a policy document does not validate
    ├── AuthenticationFailed        401 no usable credential or token was presented
    ├── PermissionDenied            403 the caller may not do this
    ├── NotFound                    404 nothing by that name (that the caller may see)
    │   └── SecretNotFound          404 the secret or version does not exist
    ├── VersionGone                 410 the version exists but cannot be read
    │   ├── VersionDisabled         410 the version was disabled (rotation, compromise)
    │   ├── VersionDeleted          410 the version was deleted and can be recovered
    │   └── VersionDestroyed        410 the version was destroyed for good
    ├── Conflict                    409 the state changed under the caller
    ├── PreconditionFailed          412 an If-Match version is no longer current
    ├── PayloadTooLarge             413 a body or value is over its limit
    ├── UnsupportedMediaType        415 a body's media type is not one accepted
    ├── Throttled                   429 the caller or a backend is over its rate
    ├── StoreUnavailable            503 the broker's own store cannot record a change
    └── BackendError                502 a secret store failed in an unexpected way
        ├── BackendUnauthorized     502 the store refused the broker's own credential
        ├── BackendUnavailable      503 the store cannot be reached right now
        └── BackendMisconfigured    503 the store answers, but not as configured
"""

from __future__ import annotations


class TokenBrokerError(Exception):
    """Base of every error tokenbroker raises on purpose."""

    status: int = 500
    code: str = "server_error"
    # Seconds a caller should wait before trying again, when that is known.
    retry_after: float | None = None

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class ConfigurationError(TokenBrokerError):
    """The configuration cannot be used; the broker does not start."""


class InvalidRequest(TokenBrokerError):
    """The request is malformed or names something impossible."""

    status = 400
    code = "invalid_request"


class PolicyInvalid(InvalidRequest):
    """A policy document does not validate; the message names document and field."""

    code = "invalid_policy"

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class AuthenticationFailed(TokenBrokerError):
    """No usable credential or bearer token was presented."""

    status = 401
    code = "invalid_token"


class PermissionDenied(TokenBrokerError):
    """The caller is authenticated but its token does not allow this."""

    status = 403
    code = "insufficient_scope"


class NotFound(TokenBrokerError):
    """Nothing by that name exists that the caller may see."""

    status = 404
    code = "not_found"


class SecretNotFound(NotFound):
    """The secret, or the version asked for, does not exist."""


class VersionGone(TokenBrokerError):
    """The version exists but can no longer be read."""

    status = 410
    code = "version_gone"


class VersionDisabled(VersionGone):
    """The version was disabled, by rotation or after a compromise."""

    code = "version_disabled"


class VersionDeleted(VersionGone):
    """The version was deleted and can still be recovered."""

    code = "version_deleted"


class VersionDestroyed(VersionGone):
    """The version was destroyed and can never be read again."""

    code = "version_destroyed"


class Conflict(TokenBrokerError):
    """The state changed under the caller, or a limit on live objects is reached."""

    status = 409
    code = "conflict"


class PreconditionFailed(TokenBrokerError):
    """A compare-and-set named a version that is no longer current."""

    status = 412
    code = "precondition_failed"


class PayloadTooLarge(TokenBrokerError):
    """A request body or a secret value is over its limit."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(TokenBrokerError):
    """A body comes in a media type the endpoint does not read."""

    status = 415
    code = "unsupported_media_type"


class Throttled(TokenBrokerError):
    """The caller, or a backend on its behalf, is over its request rate."""

    status = 429
    code = "throttled"

    def __init__(
        self,
        message: str,
        retry_after: float | None = None,
        *,
        detail: str | None = None,
    ) -> None:
        super().__init__(message, detail=detail)
        self.retry_after = retry_after


class StoreUnavailable(TokenBrokerError):
    """The broker's own store cannot record a change right now."""

    status = 503
    code = "store_unavailable"
    retry_after = 5.0


class BackendError(TokenBrokerError):
    """A secret store failed in a way the broker did not expect."""

    status = 502
    code = "backend_error"


class BackendUnauthorized(BackendError):
    """The secret store refused the broker's own credential."""

    code = "backend_unauthorized"


class BackendUnavailable(BackendError):
    """The secret store cannot be reached right now."""

    status = 503
    code = "backend_unavailable"
    retry_after = 5.0


class BackendMisconfigured(BackendError):
    """The store answers, but what the configuration names cannot work there."""

    status = 503
    code = "backend_misconfigured"
