"""A small HTTP client for the broker's API, as a service or an admin uses it."""

from __future__ import annotations

from typing import Any

import httpx


class BrokerClient:
    """Calls one environment of a running broker; keeps every response it saw."""

    def __init__(self, url: str, env: str = "dev") -> None:
        self.base = f"{url}/v1/{env}"
        self.http = httpx.Client(base_url=url, timeout=30)
        self.responses: list[httpx.Response] = []

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        url = path if path.startswith("/") else f"{self.base}/{path}"
        response = self.http.request(method, url, **options)
        self.responses.append(response)
        return response

    def token(self, client_id: str, secret: str, **form: str) -> httpx.Response:
        return self.request(
            "POST",
            "token",
            auth=(client_id, secret),
            data={"grant_type": "client_credentials", **form},
        )

    def access_token(self, client_id: str, secret: str, **form: str) -> str:
        response = self.token(client_id, secret, **form)
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def put_policy(self, token: str, name: str, document: str) -> httpx.Response:
        return self.request(
            "PUT",
            f"policies/{name}",
            content=document,
            headers={"Authorization": f"Bearer {token}",
                     "Content-Type": "application/yaml"},
        )  # fmt: skip

    def new_credential(self, token: str, service: str) -> str:
        response = self.request(
            "POST",
            f"services/{service}/credentials",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 201, response.text
        return str(response.json()["client_secret"])

    def put_secret(
        self, token: str, name: str, body: dict[str, Any], **headers: str
    ) -> httpx.Response:
        return self.request(
            "PUT",
            f"secrets/{name}",
            json=body,
            headers={"Authorization": f"Bearer {token}", **headers},
        )

    def get_secret(self, token: str, name: str, **params: str) -> httpx.Response:
        return self.request(
            "GET",
            f"secrets/{name}",
            params=params,
            headers={"Authorization": f"Bearer {token}"},
        )
