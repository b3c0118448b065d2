"""Load generators: wrk when it is on PATH, otherwise a Python one.

Both run closed-loop over keep-alive connections (each connection sends its next
request when the previous answer has arrived) and report the same figures, so
every scenario of one run is driven the same way.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

WRK_SCRIPTS = Path(__file__).parent / "wrk"
WRK_MARKER = "WRK_JSON "
SOCKET_TIMEOUT_SECONDS = 5.0

T = TypeVar("T")


@dataclass(frozen=True)
class Load:
    """How hard and how long to drive a scenario."""

    duration: float
    connections: int
    threads: int
    cpu: int | None = None


@dataclass(frozen=True)
class Target:
    """One request, sent over and over; `tokens` rotates its bearer token.

    With `tokens`, request i carries token `start + i * step` (modulo the pool),
    so a warm-up can walk the pool backwards while the measured run walks it
    forwards.
    """

    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    tokens: Path | None = None
    start: int = 0
    step: int = 1


@dataclass(frozen=True)
class Outcome:
    """What one run of a generator measured."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


class Generator(Protocol):
    name: str

    def describe(self) -> str: ...

    def run(self, target: Target, load: Load) -> Outcome: ...


def choose(preferred: str) -> Generator:
    """wrk if asked for or found on PATH (`auto`), the Python generator otherwise."""
    wrk = shutil.which("wrk")
    if preferred == "wrk" and wrk is None:
        raise SystemExit("bench: --generator wrk, but wrk is not on PATH")
    if preferred in ("auto", "wrk") and wrk is not None:
        return Wrk(wrk)
    return PythonLoad()


def pinned(command: list[str], cpu: int | None) -> list[str]:
    """`command` under `taskset -c CPU` when a CPU is given."""
    return command if cpu is None else ["taskset", "-c", str(cpu), *command]


class Wrk:
    """Drives a target with wrk, reading its figures from bench/wrk/report.lua."""

    name = "wrk"

    def __init__(self, executable: str) -> None:
        self.executable = executable

    def describe(self) -> str:
        done = subprocess.run(
            [self.executable, "--version"], capture_output=True, text=True, check=False
        )
        first = (done.stdout or done.stderr).splitlines()
        return first[0].split(" [")[0] if first else "wrk"

    def run(self, target: Target, load: Load) -> Outcome:
        command = [
            self.executable,
            f"-t{load.threads}",
            f"-c{load.connections}",
            f"-d{max(1, round(load.duration))}s",
            f"--timeout={int(SOCKET_TIMEOUT_SECONDS)}s",
            *self._script(target, load),
        ]
        done = subprocess.run(
            pinned(command, load.cpu),
            capture_output=True,
            text=True,
            timeout=load.duration + 60,
            check=False,
        )
        for line in done.stdout.splitlines():
            if line.startswith(WRK_MARKER):
                figures = json.loads(line.removeprefix(WRK_MARKER))
                break
        else:
            raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
        return Outcome(
            requests=figures["requests"],
            seconds=figures["duration_us"] / 1e6,
            p50_ms=figures["p50_us"] / 1000,
            p99_ms=figures["p99_us"] / 1000,
            non_2xx=figures["status"],
            socket_errors=sum(
                figures[kind] for kind in ("connect", "read", "write", "timeout")
            ),
        )

    @staticmethod
    def _script(target: Target, load: Load) -> list[str]:
        if target.tokens is not None:
            return [
                "-s",
                str(WRK_SCRIPTS / "rotate_tokens.lua"),
                target.url,
                "--",
                str(target.tokens),
                str(target.start),
                str(target.step),
                str(load.threads),
            ]
        headers = [f"{name}: {value}" for name, value in target.headers]
        if target.method == "GET" and not target.body:
            flags = [flag for header in headers for flag in ("-H", header)]
            return [*flags, "-s", str(WRK_SCRIPTS / "report.lua"), target.url]
        return [
            "-s",
            str(WRK_SCRIPTS / "request.lua"),
            target.url,
            "--",
            target.method,
            target.body.decode("latin-1"),
            *headers,
        ]


class PythonLoad:
    """Raw asyncio sockets, one coroutine per keep-alive connection.

    Slower than wrk: on a small machine it may saturate before a fast server
    does, which understates the bare endpoint more than the broker.
    """

    name = "python"

    def describe(self) -> str:
        return f"python asyncio sockets ({_loop_name()} loop)"

    def run(self, target: Target, load: Load) -> Outcome:
        return _run_loop(_drive(target, load))


def fetch_many(target: Target, count: int, connections: int) -> list[bytes]:
    """The bodies of `count` requests, sent over keep-alive connections.

    Raises RuntimeError on any answer but 200: this is for setting up, not for
    measuring.
    """
    return _run_loop(_fetch_many(target, count, connections))


async def _fetch_many(target: Target, count: int, connections: int) -> list[bytes]:
    requests = _Renderer(target)
    parts = urlsplit(target.url)
    bodies: list[bytes] = []

    async def connection(share: int) -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            for _ in range(share):
                writer.write(requests.render(len(bodies)))
                status, body = await asyncio.wait_for(
                    _response(reader), SOCKET_TIMEOUT_SECONDS
                )
                if status != 200:
                    raise RuntimeError(f"{target.url} answered {status}")
                bodies.append(body)
        finally:
            writer.close()

    shares = [count // connections] * connections
    shares[0] += count - sum(shares)
    await asyncio.gather(*(connection(share) for share in shares if share))
    return bodies


@dataclass
class _Tally:
    latencies_ns: list[int]
    non_2xx: int = 0
    socket_errors: int = 0
    sent: int = 0


async def _drive(target: Target, load: Load) -> Outcome:
    requests = _Renderer(target)
    tally = _Tally(latencies_ns=[])
    started = time.perf_counter()
    deadline = started + load.duration
    await asyncio.gather(
        *(
            _connection(target.url, requests, tally, deadline)
            for _ in range(load.connections)
        )
    )
    seconds = time.perf_counter() - started
    ordered = sorted(tally.latencies_ns)
    return Outcome(
        requests=len(ordered),
        seconds=seconds,
        p50_ms=_percentile(ordered, 50) / 1e6,
        p99_ms=_percentile(ordered, 99) / 1e6,
        non_2xx=tally.non_2xx,
        socket_errors=tally.socket_errors,
    )


async def _connection(
    url: str, requests: _Renderer, tally: _Tally, deadline: float
) -> None:
    parts = urlsplit(url)
    try:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    except OSError:
        tally.socket_errors += 1
        return
    try:
        while time.perf_counter() < deadline:
            payload = requests.render(tally.sent)
            tally.sent += 1
            sent_at = time.perf_counter_ns()
            writer.write(payload)
            status, _ = await asyncio.wait_for(
                _response(reader), SOCKET_TIMEOUT_SECONDS
            )
            tally.latencies_ns.append(time.perf_counter_ns() - sent_at)
            if not 200 <= status < 300:
                tally.non_2xx += 1
    except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
        tally.socket_errors += 1
    finally:
        writer.close()


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
        elif name.strip().lower() == b"transfer-encoding":
            raise ValueError("chunked responses are not supported")
    return status, await reader.readexactly(length)


class _Renderer:
    """The bytes of request number i."""

    def __init__(self, target: Target) -> None:
        parts = urlsplit(target.url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [
            f"{target.method} {path} HTTP/1.1",
            f"Host: {parts.netloc}",
            *(f"{name}: {value}" for name, value in target.headers),
        ]
        if target.body:
            lines.append(f"Content-Length: {len(target.body)}")
        self._head = "\r\n".join(lines).encode("latin-1")
        self._body = target.body
        self._tokens: Sequence[bytes] = ()
        if target.tokens is not None:
            self._tokens = target.tokens.read_bytes().split()
        self._start = target.start
        self._step = target.step
        self._fixed = self._head + b"\r\n\r\n" + self._body

    def render(self, number: int) -> bytes:
        if not self._tokens:
            return self._fixed
        token = self._tokens[(self._start + number * self._step) % len(self._tokens)]
        return (
            self._head
            + b"\r\nAuthorization: Bearer "
            + token
            + b"\r\n\r\n"
            + self._body
        )


def _percentile(ordered: Sequence[int], percent: float) -> float:
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, round(percent / 100 * (len(ordered) - 1)))
    return float(ordered[index])


def _loop_name() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def _run_loop(work: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(work)
    return uvloop.run(work)
