"""Provides `aws` backends over moto's Secrets Manager, served on a real port.

Credentials are fake keys handed to a `boto3.Session` of the provider's own, so
nothing leaks into the process environment; each backend gets a name prefix of
its own, which is how environments are kept apart on AWS.
"""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
from moto.server import ThreadedMotoServer

from backends.aws import AwsBackend, AwsConfig, make_client
from service.clock import SystemClock

REGION = "eu-west-1"
# moto's fake keys, for a broker that takes them from the default credential
# chain; no configuration or shared file of the developer's is read.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_EC2_METADATA_DISABLED": "true",
}


class Provider:
    """One moto server for the session; each backend gets its own name prefix."""

    def __init__(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        self._run = uuid.uuid4().hex[:8]
        self._counter = itertools.count()

    def session(self) -> Any:
        """A session with moto's fake keys, private to the caller."""
        return boto3.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name=REGION,
        )

    def config(self, **options: Any) -> AwsConfig:
        """Options for a backend of its own: a fresh, delimiter-ended prefix."""
        settings: dict[str, Any] = {
            "type": "aws",
            "region": REGION,
            "endpoint_url": self.endpoint_url,
            "name_prefix": f"t{self._run}-{next(self._counter)}/",
        }
        return AwsConfig.model_validate(settings | options)

    def broker_options(self, **options: Any) -> dict[str, Any]:
        """A backend's configuration, as a broker's file names it; the broker
        finds the keys of `CREDENTIALS` in its environment."""
        return self.config(**options).model_dump(mode="json", exclude_none=True)

    def client(self, config: AwsConfig | None = None) -> Any:
        """A client like the backend's, for arranging state behind its back."""
        return make_client(config or self.config(), self.session())

    def new_backend(
        self,
        config: AwsConfig | None = None,
        *,
        client: Any = None,
        abandoned_after: float = 60.0,
    ) -> AwsBackend:
        """A backend with a prefix of its own, or the one `config` names."""
        config = config or self.config()
        return AwsBackend(
            "aws",
            client=client or self.client(config),
            clock=SystemClock(),
            name_prefix=config.name_prefix,
            max_value_bytes=config.max_value_bytes,
            abandoned_after=abandoned_after,
        )

    def stop(self) -> None:
        self._server.stop()


def start(folder: Path) -> Provider:
    return Provider()
