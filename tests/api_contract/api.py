"""The HTTP API of one environment, as its admin and its services call it."""

from __future__ import annotations

from typing import Any

import httpx

from tests.service.conftest import FakeClock
from tests.service.harness import LocalBroker

TOKEN_REUSE_SECONDS = 120.0


class Api:
    """One environment's HTTP API, called as its admin or as one of its services."""

    def __init__(self, broker: LocalBroker, env: str, clock: FakeClock) -> None:
        self.broker = broker
        self.env = env
        self.clock = clock
        self._secrets: dict[str, str] = {}
        self._tokens: dict[str, tuple[str, float]] = {}

    def token(self, who: str = "admin") -> str:
        """A valid token of `who`, minted again once it has aged."""
        held = self._tokens.get(who)
        if held is not None and self.clock.now() - held[1] < TOKEN_REUSE_SECONDS:
            return held[0]
        if who == "admin":
            token = self.broker.admin_token(self.env)
        else:
            if who not in self._secrets:
                self._secrets[who] = self.broker.credential(self.env, who)
            token = self.broker.token(self.env, who, self._secrets[who])
        self._tokens[who] = (token, self.clock.now())
        return token

    def call(
        self, method: str, path: str, *, who: str = "admin", **options: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token(who)}"}
        headers.update(options.pop("headers", {}))
        return self.broker.call(
            method, f"/v1/{self.env}/{path}", headers=headers, **options
        )

    def put(
        self, name: str, value: str, *, encoding: str = "text", **headers: str
    ) -> httpx.Response:
        body = {"value": value, "encoding": encoding}
        return self.call("PUT", f"secrets/{name}", json=body, headers=headers)

    def get(self, name: str, *, who: str = "admin", **params: str) -> httpx.Response:
        return self.call("GET", f"secrets/{name}", who=who, params=params)

    def version_of(self, response: httpx.Response) -> str:
        """The version a successful write answered."""
        assert response.status_code == 200, response.text
        return str(response.json()["version"])

    def list_all(self, prefix: str, page_size: int) -> list[str]:
        """Every name a listing gives, page by page, in the order given."""
        names: list[str] = []
        token: str | None = None
        for _page in range(1000):
            params: dict[str, Any] = {"prefix": prefix, "page_size": page_size}
            if token is not None:
                params["page_token"] = token
            response = self.call("GET", "secrets", params=params)
            assert response.status_code == 200, response.text
            body = response.json()
            names.extend(entry["name"] for entry in body["secrets"])
            token = body["next_page_token"]
            if token is None:
                return names
        raise AssertionError("the listing did not end after 1000 pages")
