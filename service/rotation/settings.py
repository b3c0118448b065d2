"""The `rotation:` and `webhooks:` keys of the broker's settings.

Generator endpoints and webhook targets live in the configuration file, not in
policy documents: a policy can be written over the API by an environment's
admin, and must not be able to point the broker's signed requests anywhere.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")


def _https(url: str) -> str:
    if not re.fullmatch(r"https://[^\s/?#]+(/[^\s?#]*)?", url):
        raise ValueError("expected an https:// URL without query or fragment")
    return url.rstrip("/")


HttpsUrl = Annotated[str, AfterValidator(_https)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GeneratorEndpoint(_Model):
    """An upstream that mints, applies, verifies and revokes credentials."""

    url: HttpsUrl
    hmac_key_file: Path
    ca_file: Path | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    retries: int = Field(default=3, ge=0, le=10)


class WebhookTarget(_Model):
    """Where rotation events go, as signed CloudEvents."""

    url: HttpsUrl
    hmac_key_file: Path
    ca_file: Path | None = None
    # Event types without the `tokenbroker.` prefix; empty means every event.
    events: tuple[str, ...] = ()
    # Environment names; empty means every environment.
    environments: tuple[str, ...] = ()
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)


class RotationSettings(_Model):
    """How rotation runs; every duration is in seconds."""

    enabled: bool = True
    tick_seconds: float = Field(default=5.0, gt=0, le=3600)
    lease_seconds: float = Field(default=120.0, ge=1, le=86400)
    # A run missed while the broker was down still starts this long after its
    # slot (a secret's own `window` wins); older ones are reported as missed.
    catch_up_seconds: float = Field(default=86400.0, ge=0)
    # A run starting later than this after its slot (plus jitter) is late.
    late_after_seconds: float = Field(default=60.0, ge=0)
    max_attempts: int = Field(default=5, ge=1, le=100)
    retry_backoff_seconds: float = Field(default=30.0, ge=0)
    retry_backoff_max_seconds: float = Field(default=3600.0, ge=0)
    test_window_seconds: float = Field(default=30.0, ge=0)
    test_backoff_seconds: float = Field(default=0.5, ge=0)
    test_backoff_max_seconds: float = Field(default=2.0, ge=0)
    consumer_flush_seconds: float = Field(default=10.0, gt=0)
    bulk_batch_size: int = Field(default=10, ge=1, le=1000)
    bulk_per_second: float = Field(default=5.0, gt=0)
    bulk_max_secrets: int = Field(default=1000, ge=1)
    # For secrets rotated on demand that declare no `rotation:` block.
    default_grace_seconds: float = Field(default=86400.0, ge=0)
    default_length: int = Field(default=32, ge=16, le=4096)
    endpoints: dict[str, GeneratorEndpoint] = Field(default_factory=dict)

    @field_validator("endpoints")
    @classmethod
    def _names(cls, endpoints: dict[str, GeneratorEndpoint]) -> dict[str, object]:
        for name in endpoints:
            if not _NAME.fullmatch(name):
                raise ValueError("endpoint names are letters, digits, '_' or '-'")
        return dict(endpoints)
