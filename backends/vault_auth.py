"""The broker's own standing with Vault: its login, its token, its error boundary.

`VaultSession` is the only place in the vault backend that sends a request. It
holds the broker's token (never shown: it travels as `Sensitive` and goes into
one header per request), renews it lazily before each request once
`renew_before` of its lifetime is left, and logs in afresh when a renewal comes
back capped: Vault answers a renewal past the token's max TTL with success, a
shorter TTL and only a warning (case C06a), so a broker that trusted the status
would run into expiry. A capped grant is never logged as renewed.

Every hvac and requests error is translated here by `translate_error`, most
specific first, with the cause chained; messages name the method and the URL
path, never a query string, a value or a token.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import hvac.exceptions as hvac_errors
import requests
import structlog
from hvac.adapters import JSONAdapter
from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.clock import Clock
from service.errors import (
    BackendError,
    BackendUnauthorized,
    BackendUnavailable,
    ConfigurationError,
    PreconditionFailed,
    SecretNotFound,
    Throttled,
    TokenBrokerError,
    VersionDeleted,
    VersionDestroyed,
)
from service.sensitive import MASK, Sensitive

log = structlog.get_logger(__name__)

KUBERNETES_JWT_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
# Vault Agent's convention for files it renders: one file per credential.
ROLE_ID_FILE = Path("/run/secrets/vault-role-id")
SECRET_ID_FILE = Path("/run/secrets/vault-secret-id")


class TokenAuth(BaseModel):
    """`{method: token, token_file: PATH}`: a token some other process keeps fresh."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["token"]
    token_file: Path


class AppRoleAuth(BaseModel):
    """`{method: approle, role_id_file, secret_id_file, mount: approle}`.

    Both files default to where Vault Agent and container platforms leave
    secrets, so `{method: approle}` is complete. A role id names the role and
    grants nothing alone, so it may be given inline as `role_id` instead.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["approle"]
    role_id: str | None = Field(default=None, min_length=1)
    role_id_file: Path = ROLE_ID_FILE
    secret_id_file: Path = SECRET_ID_FILE
    mount: str = Field(default="approle", min_length=1)

    @model_validator(mode="after")
    def _one_role_id(self) -> AppRoleAuth:
        if self.role_id is not None and "role_id_file" in self.model_fields_set:
            raise ValueError("give role_id or role_id_file, not both")
        return self


class KubernetesAuth(BaseModel):
    """`{method: kubernetes, role, jwt_file, mount: kubernetes}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["kubernetes"]
    role: str = Field(min_length=1)
    jwt_file: Path = KUBERNETES_JWT_FILE
    mount: str = Field(default="kubernetes", min_length=1)


AuthConfig = Annotated[
    TokenAuth | AppRoleAuth | KubernetesAuth, Field(discriminator="method")
]


def read_credential(key: str, path: Path) -> Sensitive:
    """The credential in `path`, without one trailing newline.

    Raises ConfigurationError naming `key` and the file, never the content.
    """
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ConfigurationError(
            f"{key}: cannot read {path} ({error.strerror})"
        ) from None
    text = raw.removesuffix(b"\n").removesuffix(b"\r")
    if not text:
        raise ConfigurationError(f"{key}: {path} is empty")
    if not all(0x21 <= byte <= 0x7E for byte in text):
        raise ConfigurationError(
            f"{key}: {path} holds whitespace or control characters besides one "
            "final newline"
        )
    return Sensitive(text)


def credential_files(
    auth: TokenAuth | AppRoleAuth | KubernetesAuth,
) -> dict[str, Path]:
    """The files a login reads, by the name of the option that gives each."""
    if isinstance(auth, TokenAuth):
        return {"token_file": auth.token_file}
    if isinstance(auth, AppRoleAuth):
        files = {"secret_id_file": auth.secret_id_file}
        return files if auth.role_id else {"role_id_file": auth.role_id_file, **files}
    return {"jwt_file": auth.jwt_file}


def load_credentials(
    auth: TokenAuth | AppRoleAuth | KubernetesAuth, where: str = "auth"
) -> dict[str, Sensitive]:
    """Every credential a login needs, read now; `where` is the `auth` key path.

    Raises ConfigurationError naming the option and the file (and saying when
    the file is the default one), never the content.
    """
    loaded = {}
    for option, path in credential_files(auth).items():
        try:
            loaded[option] = read_credential(f"{where}.{option}", path)
        except ConfigurationError as error:
            if option in auth.model_fields_set:
                raise
            raise ConfigurationError(
                f"{error.message}; that is the default, set {option} to change it"
            ) from None
    return loaded


def check_credentials(
    auth: TokenAuth | AppRoleAuth | KubernetesAuth, where: str = "auth"
) -> None:
    """Refuse start-up when the configured credential cannot be loaded."""
    load_credentials(auth, where)


# Most specific first is implied: `translate_error` walks each error's MRO.
TRANSLATIONS: dict[type[BaseException], type[TokenBrokerError]] = {
    hvac_errors.InvalidPath: SecretNotFound,
    hvac_errors.Unauthorized: BackendUnauthorized,
    hvac_errors.Forbidden: BackendUnauthorized,
    hvac_errors.RateLimitExceeded: Throttled,
    hvac_errors.VaultDown: BackendUnavailable,
    hvac_errors.VaultNotInitialized: BackendUnavailable,
    hvac_errors.InternalServerError: BackendUnavailable,
    hvac_errors.BadGateway: BackendUnavailable,
    # Vault answers 412 while a performance standby catches up: retry later.
    hvac_errors.PreconditionFailed: BackendUnavailable,
    hvac_errors.InvalidRequest: BackendError,
    hvac_errors.UnsupportedOperation: BackendError,
    hvac_errors.ParamValidationError: BackendError,
    hvac_errors.UnexpectedError: BackendError,
    hvac_errors.VaultError: BackendError,
    requests.ConnectionError: BackendUnavailable,
    requests.Timeout: BackendUnavailable,
    requests.RequestException: BackendError,
}

THROTTLED_RETRY_SECONDS = 1.0
_VAULT_TOKEN = re.compile(r"\b(?:hv[sbr]|[sbr])\.[A-Za-z0-9_-]{16,}")
_QUERY = re.compile(r"\?[^\s\"',]*")


def translate_error(error: Exception) -> TokenBrokerError:
    """The broker's error for an hvac or requests error; the caller chains it.

    The message says what happened; the server's address, the request path and
    Vault's own words (which name paths inside the mount) go into `detail`.
    """
    kind = next(
        (TRANSLATIONS[cls] for cls in type(error).__mro__ if cls in TRANSLATIONS),
        BackendError,
    )
    message, detail = _describe(error)
    if isinstance(error, hvac_errors.InvalidPath):
        gone = _gone_version(error.json)
        if gone is not None:
            return gone(message, detail=detail)
    if isinstance(error, hvac_errors.InvalidRequest) and "check-and-set" in detail:
        return PreconditionFailed("vault refused a stale check-and-set", detail=detail)
    if kind is Throttled:
        # hvac raises without the response, so Vault's Retry-After is not known
        # here; its rate-limit quotas count per second, hence the one second.
        return Throttled(message, retry_after=THROTTLED_RETRY_SECONDS, detail=detail)
    return kind(message, detail=detail)


def _describe(error: Exception) -> tuple[str, str]:
    """What went wrong, and what went wrong where, with query strings and tokens
    cut out of both (C17d)."""
    if isinstance(error, hvac_errors.VaultError):
        reason = ", ".join(error.errors or []) if error.errors else ""
        message = f"vault answered {type(error).__name__}"
        where = f"{error.method or ''} {error.url or ''}".strip()
        detail = message + (f": {reason[:200]}" if reason else "")
    else:
        message = f"vault cannot be reached ({type(error).__name__})"
        request = getattr(error, "request", None)
        where = f"{request.method} {request.url}" if request and request.url else ""
        detail = message
    detail += f" on {where}" if where else ""
    return _clean(message), _clean(detail)


def _clean(text: str) -> str:
    return _VAULT_TOKEN.sub(MASK, _QUERY.sub("", text))


def _gone_version(body: Any) -> type[TokenBrokerError] | None:
    """KV v2 answers 404 with the version's metadata when it is deleted (C21)."""
    data = body.get("data") if isinstance(body, dict) else None
    metadata = data.get("metadata") if isinstance(data, dict) else None
    if not isinstance(metadata, dict):
        return None
    if metadata.get("destroyed"):
        return VersionDestroyed
    if metadata.get("deletion_time"):
        return VersionDeleted
    return None


@dataclass(frozen=True)
class _Grant:
    """A token the broker holds, and when its lifetime started by the clock."""

    token: Sensitive
    accessor: str
    ttl: float
    requested_ttl: float
    renewable: bool
    since: float


class VaultSession:
    """Authenticated requests to one Vault (and one namespace), translated."""

    def __init__(
        self,
        url: str,
        *,
        auth: TokenAuth | AppRoleAuth | KubernetesAuth,
        clock: Clock,
        namespace: str | None = None,
        ca_cert: Path | None = None,
        timeout: float = 10.0,
        renew_before: float = 1 / 3,
        session: requests.Session | None = None,
        where: str = "auth",
    ) -> None:
        http = session or requests.Session()
        # Proxies and CA bundles come from the configuration, not from whatever
        # REQUESTS_CA_BUNDLE or HTTPS_PROXY the process happens to inherit.
        http.trust_env = False
        http.verify = str(ca_cert) if ca_cert else True
        self._adapter = JSONAdapter(
            base_uri=url,
            # hvac hands it to requests, which takes seconds as a float; the
            # stubs copy hvac's docstring, which says int.
            timeout=timeout,  # type: ignore[arg-type]
            session=http,
            namespace=namespace,
        )
        self._auth = auth
        self._where = where
        self._clock = clock
        self._renew_before = renew_before
        self._grant: _Grant | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"VaultSession(url={self._adapter.base_uri!r}, token={MASK})"

    def request(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Vault's JSON answer to `method /v1/path`; `{}` for an empty answer.

        Raises the broker's error for every failure (see `translate_error`).
        """
        token = self._token()
        try:
            return self._send(method, path, token, json=json, params=params)
        except BackendUnauthorized:
            if self._still_valid(token):
                raise
            # The token was revoked or expired behind our back: one fresh login.
            self._discard(token)
            return self._send(method, path, self._token(), json=json, params=params)

    def close(self) -> None:
        self._adapter.close()

    def _send(
        self,
        method: str,
        path: str,
        token: Sensitive | None,
        **options: Any,
    ) -> dict[str, Any]:
        headers = {"X-Vault-Token": token.reveal_text()} if token else {}
        try:
            answer = self._adapter.request(
                method, f"v1/{path}", headers=headers, **options
            )
        except (hvac_errors.VaultError, requests.RequestException) as error:
            raise translate_error(error) from error
        return answer if isinstance(answer, dict) else {}

    def _token(self) -> Sensitive:
        with self._lock:
            grant = self._grant
            now = self._clock.now()
            if grant is None:
                grant = self._login("start")
            elif grant.ttl and now >= grant.since + grant.ttl:
                log.warning("vault.token_expired", accessor=grant.accessor)
                grant = self._login("expired")
            elif grant.ttl and now >= grant.since + grant.ttl * (
                1 - self._renew_before
            ):
                grant = self._renew(grant)
            self._grant = grant
            return grant.token

    def _still_valid(self, token: Sensitive) -> bool:
        """Whether Vault still knows `token`: a refusal is then about policy."""
        try:
            self._send("GET", "auth/token/lookup-self", token)
        except BackendUnauthorized:
            return False
        return True

    def _discard(self, token: Sensitive) -> None:
        with self._lock:
            if self._grant is not None and self._grant.token.equals(token):
                self._grant = None

    def _renew(self, grant: _Grant) -> _Grant:
        if not grant.renewable:
            remaining = grant.since + grant.ttl - self._clock.now()
            return self._replace(grant, remaining)
        increment = int(grant.requested_ttl)
        try:
            answer = self._send(
                "POST",
                "auth/token/renew-self",
                grant.token,
                json={"increment": increment},
            )
        except BackendUnauthorized:
            return self._login("renewal_refused")
        auth = answer.get("auth") or {}
        granted = float(auth.get("lease_duration") or 0)
        warnings = answer.get("warnings") or []
        if granted < increment or warnings:
            log.warning(
                "vault.token_renewal_capped",
                accessor=grant.accessor,
                requested_ttl=increment,
                granted_ttl=granted,
                warnings=len(warnings),
            )
            return self._replace(grant, granted)
        log.info("vault.token_renewed", accessor=grant.accessor, ttl=granted)
        return replace(grant, ttl=granted, since=self._clock.now())

    def _replace(self, grant: _Grant, granted: float) -> _Grant:
        """A fresh login for a token that cannot be renewed in full.

        With a token file the broker cannot log in: it reloads the file and,
        while nobody has replaced the token, keeps what is left of it.
        """
        auth = self._auth
        if isinstance(auth, TokenAuth):
            token = self._load_token_file(auth)
            if token.equals(grant.token):
                log.warning(
                    "vault.token_file_unchanged",
                    accessor=grant.accessor,
                    expires_in=granted,
                )
                return replace(grant, ttl=granted, since=self._clock.now())
        return self._login("capped" if grant.renewable else "not_renewable")

    def _load_token_file(self, auth: TokenAuth) -> Sensitive:
        try:
            return load_credentials(auth, self._where)["token_file"]
        except ConfigurationError as error:
            raise BackendUnauthorized(
                "the broker's vault credential cannot be loaded", detail=error.message
            ) from None

    def _login(self, reason: str) -> _Grant:
        auth = self._auth
        try:
            if isinstance(auth, TokenAuth):
                grant = self._look_up(self._load_token_file(auth))
            elif isinstance(auth, AppRoleAuth):
                files = load_credentials(auth, self._where)
                role_id = auth.role_id or files["role_id_file"].reveal_text()
                secret_id = files["secret_id_file"].reveal_text()
                grant = self._log_in(
                    f"auth/{auth.mount}/login",
                    {"role_id": role_id, "secret_id": secret_id},
                )
            else:
                jwt = load_credentials(auth, self._where)["jwt_file"]
                grant = self._log_in(
                    f"auth/{auth.mount}/login",
                    {"role": auth.role, "jwt": jwt.reveal_text()},
                )
        except ConfigurationError as error:
            raise BackendUnauthorized(
                "the broker's vault credential cannot be loaded", detail=error.message
            ) from None
        except (BackendUnavailable, BackendUnauthorized):
            raise
        except BackendError as error:
            raise BackendUnauthorized(
                f"vault refused the broker's {auth.method} login: {error.message}",
                detail=error.detail,
            ) from error
        log.info(
            "vault.login",
            method=auth.method,
            accessor=grant.accessor,
            ttl=grant.ttl,
            reason=reason,
        )
        return grant

    def _log_in(self, path: str, body: dict[str, Any]) -> _Grant:
        auth = self._send("POST", path, None, json=body).get("auth") or {}
        ttl = float(auth.get("lease_duration") or 0)
        return _Grant(
            Sensitive(str(auth.get("client_token", "")).encode()),
            str(auth.get("accessor", "")),
            ttl,
            ttl,
            bool(auth.get("renewable")),
            self._clock.now(),
        )

    def _look_up(self, token: Sensitive) -> _Grant:
        data = self._send("GET", "auth/token/lookup-self", token).get("data") or {}
        return _Grant(
            token,
            str(data.get("accessor", "")),
            float(data.get("ttl") or 0),
            float(data.get("creation_ttl") or data.get("ttl") or 0),
            bool(data.get("renewable")),
            self._clock.now(),
        )
