"""Measure the broker's hot paths against a bare FastAPI endpoint.

Starts the broker (`tokenbroker serve --dev`) and bench/bare_app.py side by side,
sets the broker up over HTTP, drives five scenarios with one load generator, and
prints requests/s, p50/p99 latency and the ratio to the bare endpoint, each the
median of rounds that drive every scenario in turn. Results go
to bench/results/latest.json. See bench/README.md.

With `--revoked N` (default 1,000,000; 0 skips it) a second broker starts on a
store already holding N revoked tokens, and the reused-token secret read is
measured against it too: the revocation check must not slow down as revoked
tokens accumulate, so the ratio of the two reads should be about 100%.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import provision
import revoked
import servers
from load import Generator, Load, Outcome, Target, choose

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results" / "latest.json"
TOKEN_LIFETIME_SECONDS = 300
BUSY_LOAD_AVERAGE = 0.5
GOALS = (("token_issue", "bare_get", 0.60), ("read_reused", "bare_get", 0.70))
LABELS = {
    "bare_get": "bare GET",
    "bare_post": "bare POST form",
    "token_issue": "token issue",
    "read_reused": "secret read, reused token",
    "read_fresh": "secret read, fresh token",
    "token_revoked": "token issue, many revoked",
    "read_revoked": "secret read, many revoked",
}
# Loading a million revocations adds some seconds to the broker's start.
REVOKED_START_SECONDS = 180.0


@dataclass(frozen=True)
class Measured:
    """One scenario's figures and its ratios to the baselines."""

    scenario: str
    label: str
    outcome: Outcome
    warmup: Outcome
    vs_bare_get: float
    vs_bare_post: float | None
    rounds: list[float]
    # read_revoked only: the median per-round ratio to read_reused.
    vs_reused: float | None = None


def main(argv: list[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    generator = choose(options.generator)
    server_cpu, load_cpu = _cpus(options.pin)
    if load_cpu is not None:
        os.sched_setaffinity(0, {load_cpu})
    load = Load(options.duration, options.connections, options.threads, load_cpu)
    warmup = Load(options.warmup, options.connections, options.threads, load_cpu)

    print(f"load generator: {generator.describe()} ({generator.name})")
    print(
        f"load: {options.threads} thread(s), {options.connections} connections, "
        f"{options.duration:g} s after a {options.warmup:g} s warm-up, per scenario "
        f"and round; {options.rounds} rounds, medians reported"
    )
    if server_cpu is None:
        print("pinning: none (taskset missing, fewer than 2 CPUs, or --no-pin)")
    else:
        print(
            f"pinning (taskset): servers on CPU {server_cpu}, "
            f"load generator on CPU {load_cpu}"
        )
    print("servers: 1 uvicorn worker each, access log off, log_config=None")
    _warn_if_busy()

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tokenbroker-bench-") as folder:
        results = _run(options, generator, load, warmup, Path(folder), server_cpu)
    elapsed = time.monotonic() - started

    _print_table(results)
    failures = [r for r in results if _errors(r.outcome) or _errors(r.warmup)]
    misses = _print_goals(results)
    _write_json(options, generator, results, server_cpu, load_cpu, elapsed)
    print(f"total time {elapsed:.0f} s; results in {RESULTS.relative_to(BENCH.parent)}")
    if failures:
        for r in failures:
            print(
                f"FAILED: {r.label}: {r.outcome.non_2xx + r.warmup.non_2xx} non-2xx "
                f"responses, {r.outcome.socket_errors + r.warmup.socket_errors} "
                "socket errors (warm-up included)",
                file=sys.stderr,
            )
        return 1
    return 3 if misses and options.strict else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__)
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of every scenario (median)"
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="wrk -t")
    parser.add_argument(
        "--fresh-tokens",
        type=int,
        default=30_000,
        help="tokens pre-issued for the fresh-token scenario, split among rounds",
    )
    parser.add_argument(
        "--revoked",
        type=int,
        default=1_000_000,
        help="revoked tokens in the store of the revocation scenario (0: skip it)",
    )
    parser.add_argument(
        "--generator", choices=("auto", "wrk", "python"), default="auto"
    )
    parser.add_argument(
        "--no-pin", dest="pin", action="store_false", help="do not use taskset"
    )
    parser.add_argument(
        "--info-logs", action="store_true", help="run the broker with info logs"
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 3 when a goal is missed"
    )
    return parser


def _run(
    options: argparse.Namespace,
    generator: Generator,
    load: Load,
    warmup: Load,
    folder: Path,
    server_cpu: int | None,
) -> list[Measured]:
    admin_secret = secrets.token_urlsafe(24)
    broker_port, bare_port = servers.free_port(), servers.free_port()
    broker_command = _broker_command(options, admin_secret, broker_port)
    bare_command = [
        sys.executable,
        str(BENCH / "bare_app.py"),
        "--port",
        str(bare_port),
    ]
    running: list[servers.Server] = []
    try:
        broker_folder = folder / "broker"
        broker_folder.mkdir()
        running.append(
            servers.start(
                "broker",
                broker_command,
                port=broker_port,
                cwd=broker_folder,
                cpu=server_cpu,
            )
        )
        running.append(
            servers.start(
                "bare", bare_command, port=bare_port, cwd=folder, cpu=server_cpu
            )
        )
        broker, bare = running
        servers.wait_ready(broker, "/healthz")
        servers.wait_ready(bare, "/v1/dev/secrets/bench/key")
        client = provision.provision(broker.base_url, admin_secret)
        token = provision.issue_one(broker.base_url, client)

        scenarios = _scenarios(broker.base_url, bare.base_url, client, token)
        if options.revoked:
            # The same requests as the first broker's, so that both brokers have
            # served the same history when their reads are compared.
            issue, read = _revoked_broker(
                options, admin_secret, folder, server_cpu, running
            )
            scenarios.update(token_revoked=issue, read_revoked=read)
        # Every round drives every scenario once, so that a change in what else
        # the machine does shifts a round's baseline and broker figures alike.
        rounds = [
            _round(generator, scenarios, load, warmup, number, options.rounds)
            for number in range(options.rounds)
        ]
        # Fresh tokens last: the pool's tokens and their reads stay in the
        # broker's memory, which the other scenarios (and the broker with many
        # revoked tokens, which has no pool) must not carry.
        issued_at = time.monotonic()
        pool = _issue_pool(broker.base_url, client, options, folder / "tokens.txt")
        fresh_rounds = []
        for number in range(options.rounds):
            fresh, warm = _fresh_read(broker.base_url, pool, number, options.rounds)
            both = {"bare_get": scenarios["bare_get"], "read_fresh": fresh}
            fresh_rounds.append(
                _round(generator, both, load, warmup, number, options.rounds,
                       warm_targets={"read_fresh": warm})
            )  # fmt: skip
        _check_pool(fresh_rounds, options.fresh_tokens, issued_at)
    finally:
        for server in reversed(running):
            servers.stop(server)
    fresh_only = [r for r in _ratios(fresh_rounds) if r.scenario == "read_fresh"]
    return _ratios(rounds) + fresh_only


def _round(
    generator: Generator,
    scenarios: dict[str, Target],
    load: Load,
    warmup: Load,
    number: int,
    rounds: int,
    warm_targets: dict[str, Target] | None = None,
) -> dict[str, tuple[Outcome, Outcome]]:
    """Every scenario once; a warm-up drives `warm_targets`' target, if any."""
    print(f"  round {number + 1} of {rounds}", file=sys.stderr)
    warm_targets = warm_targets or {}
    return {
        key: _measure(
            generator, key, target, warm_targets.get(key, target), load, warmup
        )
        for key, target in scenarios.items()
    }


def _broker_command(
    options: argparse.Namespace, admin_secret: str, port: int
) -> list[str]:
    return [
        _tokenbroker(),
        "serve",
        "--dev",
        "--dev-admin-secret",
        admin_secret,
        "--port",
        str(port),
        "--log-level",
        "info" if options.info_logs else "warning",
    ]


def _revoked_broker(
    options: argparse.Namespace,
    admin_secret: str,
    folder: Path,
    server_cpu: int | None,
    running: list[servers.Server],
) -> tuple[Target, Target]:
    """A broker over a store seeded with revoked tokens: its token request and
    its reused-token read."""
    broker_folder = folder / "broker-revoked"
    broker_folder.mkdir()
    took = revoked.seed(broker_folder, options.revoked)
    print(
        f"  seeded {options.revoked:,} revoked tokens in {took:.1f} s", file=sys.stderr
    )
    port = servers.free_port()
    started = time.monotonic()
    server = servers.start(
        "broker-revoked",
        _broker_command(options, admin_secret, port),
        port=port,
        cwd=broker_folder,
        cpu=server_cpu,
    )
    running.append(server)
    servers.wait_ready(server, "/healthz", timeout=REVOKED_START_SECONDS)
    print(
        f"  broker with {options.revoked:,} revoked tokens ready in "
        f"{time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )
    client = provision.provision(server.base_url, admin_secret)
    token = provision.issue_one(server.base_url, client)
    return provision.token_request(server.base_url, client), Target(
        f"{server.base_url}/v1/{provision.ENV}/secrets/{provision.SECRET_NAME}",
        headers=(("Authorization", f"Bearer {token}"),),
    )


def _scenarios(
    broker: str, bare: str, client: provision.Client, token: str
) -> dict[str, Target]:
    secret_path = f"/v1/{provision.ENV}/secrets/{provision.SECRET_NAME}"
    return {
        "bare_get": Target(bare + secret_path),
        "bare_post": provision.token_request(bare, client),
        "token_issue": provision.token_request(broker, client),
        "read_reused": Target(
            broker + secret_path, headers=(("Authorization", f"Bearer {token}"),)
        ),
    }


def _fresh_read(
    broker: str, pool: Path, number: int, rounds: int
) -> tuple[Target, Target]:
    """Round `number`'s own slice of the pool: measured forwards from its start,
    warmed up backwards from its end."""
    url = f"{broker}/v1/{provision.ENV}/secrets/{provision.SECRET_NAME}"
    size = len(pool.read_text().split()) // rounds
    start = number * size
    return (
        Target(url, tokens=pool, start=start),
        Target(url, tokens=pool, start=start + size - 1, step=-1),
    )


def _issue_pool(
    broker: str, client: provision.Client, options: argparse.Namespace, path: Path
) -> Path:
    started = time.monotonic()
    tokens = provision.issue_many(
        broker, client, options.fresh_tokens, options.connections
    )
    path.write_text("\n".join(tokens) + "\n")
    took = time.monotonic() - started
    print(f"  pre-issued {len(tokens)} tokens in {took:.1f} s", file=sys.stderr)
    return path


def _check_pool(
    rounds: list[dict[str, tuple[Outcome, Outcome]]], pool: int, issued: float
) -> None:
    per_round = pool // len(rounds)
    most = max(sum(run.requests for run in measured["read_fresh"])
               for measured in rounds)  # fmt: skip
    if most > per_round:
        print(
            f"  warning: a round made {most} fresh-token reads (warm-up included) "
            f"with a slice of {per_round} tokens, so some reused one (raise "
            "--fresh-tokens)",
            file=sys.stderr,
        )
    if time.monotonic() - issued > TOKEN_LIFETIME_SECONDS:
        print("  warning: some pre-issued tokens may have expired", file=sys.stderr)


def _measure(
    generator: Generator,
    key: str,
    target: Target,
    warm_target: Target,
    load: Load,
    warmup: Load,
) -> tuple[Outcome, Outcome]:
    print(f"  {LABELS[key]}: warming up, then measuring", file=sys.stderr)
    warm = generator.run(warm_target, warmup)
    outcome = generator.run(target, load)
    print(f"  {LABELS[key]}: {outcome.rate:,.0f} req/s", file=sys.stderr)
    return outcome, warm


def _ratios(rounds: list[dict[str, tuple[Outcome, Outcome]]]) -> list[Measured]:
    """Per scenario, the round of median rate and the median of its per-round
    ratios to the same round's baselines."""
    results = []
    for key in rounds[0]:
        runs = sorted(rounds, key=lambda measured: measured[key][0].rate)
        outcome, warm = runs[len(runs) // 2][key]
        results.append(
            Measured(
                scenario=key,
                label=LABELS[key],
                outcome=outcome,
                warmup=warm,
                vs_bare_get=_median_ratio(rounds, key, "bare_get"),
                vs_bare_post=(
                    _median_ratio(rounds, key, "bare_post")
                    if key == "token_issue"
                    else None
                ),
                rounds=[measured[key][0].rate for measured in rounds],
                vs_reused=(
                    _median_ratio(rounds, key, "read_reused")
                    if key == "read_revoked"
                    else None
                ),
            )
        )
    return results


def _median_ratio(
    rounds: list[dict[str, tuple[Outcome, Outcome]]], key: str, baseline: str
) -> float:
    return statistics.median(
        measured[key][0].rate / (measured[baseline][0].rate or 1.0)
        for measured in rounds
    )


def _print_table(results: list[Measured]) -> None:
    print()
    print(
        f"{'scenario':<27}{'req/s':>10}{'rounds':>16}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'non-2xx':>9}{'vs GET':>8}{'vs POST':>9}"
    )
    for result in results:
        outcome = result.outcome
        vs_post = (
            f"{result.vs_bare_post:.0%}" if result.vs_bare_post is not None else ""
        )
        spread = f"{min(result.rounds):,.0f}-{max(result.rounds):,.0f}"
        print(
            f"{result.label:<27}{outcome.rate:>10,.0f}{spread:>16}"
            f"{outcome.p50_ms:>9.2f}{outcome.p99_ms:>9.2f}{outcome.non_2xx:>9}"
            f"{result.vs_bare_get:>8.0%}{vs_post:>9}"
        )
    print()


def _print_goals(results: list[Measured]) -> bool:
    by_key = {result.scenario: result for result in results}
    missed = False
    for scenario, baseline, goal in GOALS:
        ratio = by_key[scenario].vs_bare_get
        verdict = "PASS" if ratio >= goal else "MISS"
        missed |= verdict == "MISS"
        print(
            f"goal: {LABELS[scenario]} >= {goal:.0%} of {LABELS[baseline]}: "
            f"{ratio:.0%} {verdict}"
        )
    post_ratio = by_key["token_issue"].vs_bare_post
    if post_ratio is not None:
        print(f"      (token issue is {post_ratio:.0%} of the bare POST form endpoint)")
    revoked = _revocation_ratio(by_key)
    if revoked is not None:
        print(
            f"revocation check: {LABELS['read_revoked']} is {revoked:.0%} of "
            f"{LABELS['read_reused']} (no revoked tokens)"
        )
    return missed


def _revocation_ratio(by_key: dict[str, Measured]) -> float | None:
    if "read_revoked" not in by_key:
        return None
    return by_key["read_revoked"].vs_reused


def _write_json(
    options: argparse.Namespace,
    generator: Generator,
    results: list[Measured],
    server_cpu: int | None,
    load_cpu: int | None,
    elapsed: float,
) -> None:
    by_key = {result.scenario: result for result in results}
    document = {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_after": round(os.getloadavg()[0], 2),
        },
        "generator": {"name": generator.name, "version": generator.describe()},
        "load": {
            "rounds": options.rounds,
            "duration_s": options.duration,
            "warmup_s": options.warmup,
            "connections": options.connections,
            "threads": options.threads,
            "fresh_tokens": options.fresh_tokens,
            "revoked_tokens": options.revoked,
            "broker_log_level": "info" if options.info_logs else "warning",
        },
        "pinning": {"server_cpu": server_cpu, "load_cpu": load_cpu},
        "scenarios": {
            result.scenario: {
                "label": result.label,
                "requests_per_s": round(result.outcome.rate, 1),
                "rounds_requests_per_s": [round(rate, 1) for rate in result.rounds],
                "vs_bare_get": round(result.vs_bare_get, 4),
                "vs_bare_post": (
                    round(result.vs_bare_post, 4)
                    if result.vs_bare_post is not None
                    else None
                ),
                **asdict(result.outcome),
                "warmup_requests": result.warmup.requests,
            }
            for result in results
        },
        "goals": {
            scenario: {
                "baseline": baseline,
                "goal": goal,
                "ratio": round(by_key[scenario].vs_bare_get, 4),
                "pass": by_key[scenario].vs_bare_get >= goal,
            }
            for scenario, baseline, goal in GOALS
        },
        "revocation": {
            "revoked_tokens": options.revoked,
            "read_vs_none_revoked": (
                round(ratio, 4)
                if (ratio := _revocation_ratio(by_key)) is not None
                else None
            ),
        },
        "total_seconds": round(elapsed, 1),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")


def _warn_if_busy() -> None:
    """Other work on the machine skews every figure; say so up front."""
    one_minute = os.getloadavg()[0]
    print(f"load average before the run: {one_minute:.2f}")
    if one_minute > BUSY_LOAD_AVERAGE:
        print("  warning: the machine is busy; figures will be noisy", file=sys.stderr)


def _errors(outcome: Outcome) -> int:
    return outcome.non_2xx + outcome.socket_errors


def _cpus(pin: bool) -> tuple[int | None, int | None]:
    """The server's CPU and the load generator's, or (None, None)."""
    available = sorted(os.sched_getaffinity(0))
    if not pin or shutil.which("taskset") is None or len(available) < 2:
        return None, None
    return available[0], available[1]


def _tokenbroker() -> str:
    beside = Path(sys.executable).with_name("tokenbroker")
    found = str(beside) if beside.exists() else shutil.which("tokenbroker")
    if found is None:
        raise SystemExit("bench: tokenbroker is not installed in this environment")
    return found


def _commit() -> str | None:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=BENCH.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or None


def _exit_on_signal(number: int, _frame: FrameType | None) -> None:
    # SystemExit unwinds through the finally blocks that stop the servers.
    raise SystemExit(128 + number)


if __name__ == "__main__":
    sys.exit(main())
