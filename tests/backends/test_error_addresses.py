"""No backend's error message names where its store lives (hosts, URLs).

Messages can reach a caller (an error answer, a rotation record); each backend's
translation boundary builds them from codes and names only, and leaves the
store's address to the log. One SDK failure per backend that quotes the address.
"""

from __future__ import annotations

from collections.abc import Callable

import botocore.exceptions as boto  # type: ignore[import-untyped]
import pytest
import requests
from azure.core.exceptions import HttpResponseError, ServiceRequestError

from backends.aws_errors import translate as translate_aws
from backends.azure_errors import translate as translate_azure
from backends.vault_auth import translate_error as translate_vault
from service.errors import TokenBrokerError

HOST = "hidden-host.internal"


def vault_refused() -> TokenBrokerError:
    request = requests.Request("GET", f"https://{HOST}:8200/v1/kv/data/x").prepare()
    return translate_vault(requests.ConnectionError("refused", request=request))


def aws_unreachable() -> TokenBrokerError:
    error = boto.EndpointConnectionError(endpoint_url=f"https://{HOST}:8443/")
    return translate_aws(error, "app/db")


def azure_unreachable() -> TokenBrokerError:
    error = ServiceRequestError(f"Cannot connect to host {HOST}:443")
    return translate_azure(error, "secret 'app/db'")


def azure_refused() -> TokenBrokerError:
    error = HttpResponseError(message=f"(Forbidden) https://{HOST}/secrets/app")
    return translate_azure(error, "secret 'app/db'")


@pytest.mark.parametrize(
    "translated",
    [vault_refused, aws_unreachable, azure_unreachable, azure_refused],
    ids=["vault", "aws", "azure-unreachable", "azure-refused"],
)
def test_translated_message_names_no_host_of_the_store(
    translated: Callable[[], TokenBrokerError],
) -> None:
    """The SDK's text quotes the host; the broker's message does not."""
    assert HOST not in translated().message
