"""The AWS backend's configuration and the boto3 client built from it.

One Secrets Manager client per backend, made from `AwsConfig`: the default
credential chain (or a given `boto3.Session`), an assumed role on top when
`role_arn` is set, and botocore's "standard" retry mode. That mode retries
throttling and transient failures with exponential backoff and full jitter,
honours `x-amz-retry-after`, stops after `max_attempts` tries per call and keeps
a client-wide retry quota against retry storms; what still fails reaches
`aws_errors.translate`.

botocore logs request parameters and response bodies, values included, at
DEBUG; building a client filters those records out for good.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Final, Literal

import boto3  # type: ignore[import-untyped]
import botocore.exceptions as boto  # type: ignore[import-untyped]
import botocore.session  # type: ignore[import-untyped]
from botocore.config import Config as BotoConfig  # type: ignore[import-untyped]
from botocore.credentials import (  # type: ignore[import-untyped]
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    DeferredRefreshableCredentials,
)
from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.errors import ConfigurationError

AWS_LIMIT_BYTES: Final = 65536


class AwsConfig(BaseModel):
    """`{type: aws, region: ...}`; credentials come from the default chain."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["aws"]
    region: str = Field(min_length=1)
    endpoint_url: str | None = Field(default=None, pattern=r"^https?://")
    sts_endpoint_url: str | None = Field(default=None, pattern=r"^https?://")
    role_arn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:iam::")
    external_id: str | None = Field(default=None, min_length=2, max_length=1224)
    role_session_name: str = Field(default="tokenbroker", pattern=r"^[\w+=,.@-]{2,64}$")
    name_prefix: str = Field(default="", pattern=r"^([A-Za-z0-9/_+=.@-]*/)?$")
    max_value_bytes: int = Field(default=AWS_LIMIT_BYTES, ge=1, le=AWS_LIMIT_BYTES)
    max_attempts: int = Field(default=5, ge=1, le=10)
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _external_id_needs_role(self) -> AwsConfig:
        if self.external_id is not None and self.role_arn is None:
            raise ValueError("external_id is only used with role_arn")
        return self


def make_client(config: AwsConfig, session: Any = None) -> Any:
    """A Secrets Manager client for `config`; the default credential chain unless
    a `boto3.Session` is given, and the assumed role on top when configured."""
    _keep_bodies_out_of_logs()
    session = session or boto3.Session()
    if config.role_arn is not None:
        session = _assume_role(session, config)
    options = BotoConfig(
        retries={"mode": "standard", "total_max_attempts": config.max_attempts},
        connect_timeout=config.timeout_seconds,
        read_timeout=config.timeout_seconds,
        user_agent_appid="tokenbroker",
    )
    try:
        return session.client(
            "secretsmanager",
            region_name=config.region,
            endpoint_url=config.endpoint_url,
            config=options,
        )
    except (boto.BotoCoreError, ValueError) as error:
        raise ConfigurationError(
            f"the AWS client cannot be built ({type(error).__name__})"
        ) from None


class _AssumedRole(CredentialProvider):  # type: ignore[misc]
    """Credentials of `role_arn`, refreshed by STS before they expire."""

    METHOD = "tokenbroker-assume-role"
    CANONICAL_NAME = "tokenbroker-assume-role"

    def __init__(self, fetcher: Any) -> None:
        super().__init__()
        self._fetcher = fetcher

    def load(self) -> Any:
        return DeferredRefreshableCredentials(
            refresh_using=self._fetcher.fetch_credentials, method=self.METHOD
        )


def _assume_role(source: Any, config: AwsConfig) -> Any:
    source_credentials = source.get_credentials()
    if source_credentials is None:
        raise ConfigurationError(
            "role_arn is set but the default AWS credential chain found no "
            "credentials to assume it with"
        )
    extra = {"RoleSessionName": config.role_session_name}
    if config.external_id is not None:
        extra["ExternalId"] = config.external_id
    fetcher = AssumeRoleCredentialFetcher(
        client_creator=functools.partial(
            source.client,
            region_name=config.region,
            endpoint_url=config.sts_endpoint_url,
        ),
        source_credentials=source_credentials,
        role_arn=config.role_arn,
        extra_args=extra,
    )
    assumed = botocore.session.Session()
    resolver = assumed.get_component("credential_provider")
    resolver.insert_before("env", _AssumedRole(fetcher))
    return boto3.Session(botocore_session=assumed, region_name=config.region)


class _NoWireDebug(logging.Filter):
    """Drops botocore's DEBUG records, which print request and response bodies."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


def _keep_bodies_out_of_logs() -> None:
    """botocore logs every request's parameters and every response body at DEBUG,
    values included; those two loggers never pass DEBUG once a client exists."""
    for name in ("botocore.endpoint", "botocore.parsers"):
        logger = logging.getLogger(name)
        if not any(isinstance(item, _NoWireDebug) for item in logger.filters):
            logger.addFilter(_NoWireDebug())
