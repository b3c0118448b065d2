"""The baseline: a bare FastAPI app shaped like the broker's two hot endpoints.

It does what any endpoint of that shape must do (route, read path parameters,
parse a small form body, answer a small JSON object) and nothing of the broker's
own work: no authentication, signing, verification, policy or storage. Served
by uvicorn with the options `tokenbroker serve` uses, so the ratio of the two
measures the broker's own cost.
"""

from __future__ import annotations

import argparse
from urllib.parse import parse_qsl

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

CREATED_AT = "2025-01-01T00:00:00+00:00"


@app.get("/v1/{env}/secrets/{name:path}")
async def read_secret(env: str, name: str) -> JSONResponse:
    return JSONResponse(
        {
            "name": name,
            "version": "1",
            "value": "s3cr3t-value-for-bench",
            "encoding": "text",
            "stage": "current",
            "created_at": CREATED_AT,
        }
    )


@app.post("/v1/{env}/token")
async def token(env: str, request: Request) -> JSONResponse:
    form = dict(parse_qsl((await request.body()).decode("utf-8")))
    return JSONResponse(
        {
            "access_token": "x" * 400,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": form.get("scope", ""),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    arguments = parser.parse_args()
    # The same options as `tokenbroker serve` (service/cli.py): one worker.
    uvicorn.run(
        app,
        host=arguments.host,
        port=arguments.port,
        log_config=None,
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
