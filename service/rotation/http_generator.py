"""The `http` generator: an upstream service mints, applies, verifies, revokes.

`generator: {type: http, endpoint: NAME}` names an endpoint of the settings'
`rotation.endpoints`, which holds its HTTPS URL and HMAC key. The upstream
implements four POST routes, each with a JSON body and answer:

    /mint    {env, secret, rotation_id}          -> {value, ref?}
    /apply   {env, secret, rotation_id, ref, value}   -> any 2xx
    /verify  {env, secret, rotation_id, value}   -> {valid: bool}
    /revoke  {env, secret, ref, fingerprint}     -> any 2xx

Every request carries `Idempotency-Key` (the rotation id, or the fingerprint for
revoke) and an HMAC signature (`service.rotation.signing`). Transport errors,
429 and 5xx are retried with backoff; any other status fails the step. Nothing
the upstream answers is ever quoted in an error or a log.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import structlog

from policies.model import GeneratorProblem
from service.errors import BackendError, BackendUnavailable
from service.rotation.generators import Minted, RotationContext, refuse, unknown_keys
from service.rotation.settings import GeneratorEndpoint, RotationSettings
from service.rotation.signing import (
    SIGNATURE_HEADER,
    load_key,
    signature,
    tls_verify,
)
from service.sensitive import Sensitive

log = structlog.get_logger(__name__)

RETRY_BASE_SECONDS = 0.2


def fingerprint(value: Sensitive) -> str:
    """A name for a credential that does not reveal it."""
    return hashlib.sha256(value.reveal()).hexdigest()[:32]


class HttpGenerator:
    """Talks to one configured upstream endpoint."""

    def __init__(
        self,
        name: str,
        endpoint: GeneratorEndpoint,
        *,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = name
        self.endpoint = endpoint
        self._key = load_key(
            endpoint.hmac_key_file, f"rotation.endpoints.{name}.hmac_key_file"
        )
        self._sleep = sleep
        self._client = httpx.Client(
            base_url=endpoint.url,
            timeout=endpoint.timeout_seconds,
            verify=tls_verify(endpoint.ca_file),
            transport=transport,
            trust_env=False,
        )

    def __repr__(self) -> str:
        return f"HttpGenerator(endpoint={self.name!r})"

    @classmethod
    def validate(
        cls, params: Mapping[str, Any], settings: RotationSettings | None
    ) -> list[GeneratorProblem]:
        """What is wrong with `{type: http, endpoint: NAME}`; the name is
        checked only when the settings are known."""
        problems = unknown_keys(params, ("endpoint",))
        name = params.get("endpoint")
        if name is None:
            problems.append(GeneratorProblem("required field is missing", "endpoint"))
        elif not isinstance(name, str):
            problems.append(GeneratorProblem("expected a string", "endpoint"))
        elif settings is not None and name not in settings.endpoints:
            problems.append(
                GeneratorProblem("must name one of rotation.endpoints", "endpoint")
            )
        return problems

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], settings: RotationSettings
    ) -> HttpGenerator:
        """`{type: http, endpoint: NAME}`; raises InvalidRequest."""
        refuse("http", cls.validate(params, settings))
        name = params["endpoint"]
        return cls(name, settings.endpoints[name])

    def create(self, context: RotationContext) -> Minted:
        answer = self._call("mint", _base(context), context.rotation_id)
        value, ref = answer.get("value"), answer.get("ref")
        if not isinstance(value, str) or not value:
            raise BackendError(f"generator endpoint {self.name!r}: mint gave no value")
        if ref is not None and (not isinstance(ref, str) or len(ref) > 256):
            raise BackendError(f"generator endpoint {self.name!r}: mint gave a bad ref")
        return Minted(Sensitive.from_text(value), ref)

    def apply(self, context: RotationContext, value: Sensitive) -> None:
        body = {**_base(context), "value": value.reveal_text()}
        self._call("apply", body, context.rotation_id)

    def test(self, context: RotationContext, value: Sensitive) -> bool:
        body = {**_base(context), "value": value.reveal_text()}
        try:
            answer = self._call("verify", body, context.rotation_id)
        except BackendError:
            # The test step retries within its window; a refusal is "not yet".
            return False
        return answer.get("valid") is True

    def revoke(
        self, context: RotationContext, value: Sensitive, ref: str | None
    ) -> None:
        print_ = fingerprint(value)
        body = {"env": context.env, "secret": context.secret, "ref": ref}
        self._call("revoke", {**body, "fingerprint": print_}, print_)

    def close(self) -> None:
        self._client.close()

    def _call(self, route: str, body: dict[str, Any], key: str) -> dict[str, Any]:
        content = json.dumps(body, separators=(",", ":")).encode()
        for attempt in range(self.endpoint.retries + 1):
            if attempt:
                self._sleep(RETRY_BASE_SECONDS * 2 ** (attempt - 1))
            headers = {
                "Content-Type": "application/json",
                "Idempotency-Key": key,
                SIGNATURE_HEADER: signature(self._key, int(time.time()), content),
            }
            try:
                response = self._client.post(f"/{route}", content=content,
                                             headers=headers)  # fmt: skip
            except httpx.TransportError as error:
                log.warning(
                    "generator_unreachable",
                    endpoint=self.name,
                    route=route,
                    error_type=type(error).__name__,
                )
                continue
            if response.status_code == 429 or response.status_code >= 500:
                log.warning(
                    "generator_refused",
                    endpoint=self.name,
                    route=route,
                    status=response.status_code,
                )
                continue
            if not response.is_success:
                raise BackendError(
                    f"generator endpoint {self.name!r}: {route} answered "
                    f"{response.status_code}"
                )
            return _json(response)
        raise BackendUnavailable(
            f"generator endpoint {self.name!r}: {route} failed after "
            f"{self.endpoint.retries + 1} attempts"
        )


def _base(context: RotationContext) -> dict[str, Any]:
    return {
        "env": context.env,
        "secret": context.secret,
        "rotation_id": context.rotation_id,
    }


def _json(response: httpx.Response) -> dict[str, Any]:
    if not response.content:
        return {}
    try:
        answer = response.json()
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}
