"""The `tokenbroker` command: serve, keygen, bootstrap, and the commands for
people that call a running broker (service/commands/).

Messages for people go to standard output; the running broker's events go to
standard error as JSON.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import sys
from pathlib import Path

import structlog

from service import dev, logs
from service.audit import record_now
from service.bootstrap import ADMIN_SERVICE, bootstrap_admin
from service.broker import Broker
from service.clock import SystemClock
from service.commands import register as register_commands
from service.commands.client import VARIABLES_HELP
from service.config import load_settings
from service.crypto import KeyEncryptionKey
from service.errors import ConfigurationError, Conflict, TokenBrokerError
from service.store.database import open_store

log = structlog.get_logger(__name__)

# The collector's thresholds while serving (see _settle_heap), as measured;
# Python's own are 700, 10 and 10.
GC_YOUNG_THRESHOLD = 10_000
GC_OLDER_THRESHOLDS = (20, 100)

DEV_BANNER = """\
tokenbroker is running in DEV MODE: the store and its encryption key both live in
{folder}/. Anyone who can read that folder can read every secret. Never use dev
mode for anything real; see README.md, "Running for real".
"""


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    # Events go to standard error for every command, so that standard output
    # holds only the command's answer (`--json`, `audit export`); serve sets
    # its own level before it logs anything.
    logs.configure("warning")
    try:
        return int(arguments.handler(arguments))
    except ConfigurationError as error:
        sys.stderr.write(f"tokenbroker: {error.message}\n")
        return 2
    except TokenBrokerError as error:
        sys.stderr.write(f"tokenbroker: {error.message}\n")
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokenbroker",
        description=__doc__,
        epilog=VARIABLES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the broker")
    serve.add_argument("--config", type=Path, help="YAML configuration file")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--env", help="serve this environment only")
    serve.add_argument("--policies", type=Path, help="apply the policy files here")
    serve.add_argument("--log-level", default="info", choices=sorted(logs.LEVELS))
    serve.add_argument(
        "--dev", action="store_true", help="embedded store under ./.tokenbroker/"
    )
    serve.add_argument(
        "--dev-admin-secret", metavar="VALUE", help="fix the dev admin secret"
    )
    serve.set_defaults(handler=_serve)

    keygen = commands.add_parser("keygen", help="write a new key-encryption key")
    keygen.add_argument("file", type=Path)
    keygen.set_defaults(handler=_keygen)

    bootstrap = commands.add_parser(
        "bootstrap", help="create an environment's first admin credential"
    )
    bootstrap.add_argument("--config", type=Path, required=True)
    bootstrap.add_argument("--env", required=True)
    bootstrap.add_argument("--json", action="store_true", help="print JSON")
    bootstrap.set_defaults(handler=_bootstrap)
    register_commands(commands)
    return parser


def _serve(arguments: argparse.Namespace) -> int:
    import uvicorn

    from service.app import create_app
    from service.http_head import BoundedHttpToolsProtocol

    logs.configure(arguments.log_level)
    if arguments.dev and arguments.config:
        raise ConfigurationError("--dev runs without --config; choose one")
    if arguments.dev_admin_secret is not None and not arguments.dev:
        raise ConfigurationError("--dev-admin-secret works only with --dev")
    if arguments.dev:
        dev.check_admin_secret(arguments.dev_admin_secret)
        settings = dev.dev_settings(dev.FOLDER, arguments.policies)
    else:
        overrides = {"policies_dir": arguments.policies} if arguments.policies else {}
        settings = load_settings(arguments.config, **overrides)

    listening = f"http://{_url_host(arguments.host)}:{arguments.port}"
    public_url = settings.public_url or listening
    broker = Broker(settings, public_url=public_url, only_env=arguments.env)
    if arguments.dev:
        _announce_dev(broker, arguments.dev_admin_secret)
    # Where it listens, and the issuer's URL when a proxy or another name
    # stands in front of it.
    public = (
        "" if public_url.rstrip("/") == listening else f" (public URL {public_url})"
    )
    sys.stdout.write(
        f"tokenbroker serving {', '.join(sorted(broker.environments))} "
        f"at {listening}{public}\n"
    )
    sys.stdout.flush()
    _settle_heap()
    try:
        uvicorn.run(
            create_app(broker),
            host=arguments.host,
            port=arguments.port,
            log_config=None,
            access_log=False,
            server_header=False,
            http=BoundedHttpToolsProtocol,
            # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told
            # otherwise, which would let any local process choose the address
            # that is audited and rate-limited.
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=[str(net) for net in settings.trusted_proxies],
        )
    finally:
        broker.close()
    return 0


def _settle_heap() -> None:
    """Tune the cyclic garbage collector for serving, once start-up is done.

    Start-up leaves a large heap that lives as long as the process (the app's
    routes and models, SQLAlchemy's and pydantic's machinery): frozen, the
    collector never walks it again. Young objects are collected after
    GC_YOUNG_THRESHOLD allocations rather than Python's 700, which under load
    ran several times per request. Measured with bench/: the secret read's p99
    went from about 85 ms to 12 ms, and its throughput up by a fifth.
    """
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *GC_OLDER_THRESHOLDS)


def _url_host(host: str) -> str:
    """`host` as a URL writes it: an IPv6 address goes in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _announce_dev(broker: Broker, fixed_secret: str | None) -> None:
    folder = dev.FOLDER.resolve()
    log.warning("dev_mode", folder=str(folder))
    sys.stdout.write(DEV_BANNER.format(folder=folder))
    secret, new = dev.ensure_dev_admin(broker, dev.FOLDER, fixed_secret)
    if new:
        sys.stdout.write(
            f"\nAdmin credential (shown once, also in {folder}/admin.json):\n"
            f"  client_id:     {ADMIN_SERVICE}\n  client_secret: {secret}\n\n"
        )
    else:
        sys.stdout.write(f"Admin credential: {folder}/admin.json\n")


def _keygen(arguments: argparse.Namespace) -> int:
    path: Path = arguments.file
    if path.exists():
        raise ConfigurationError(f"{path} exists; keygen never overwrites a key")
    KeyEncryptionKey.generate().write(path)
    sys.stdout.write(f"wrote a new key-encryption key to {path} (mode 0600)\n")
    return 0


def _bootstrap(arguments: argparse.Namespace) -> int:
    settings = load_settings(arguments.config)
    env = arguments.env
    if env not in settings.environments:
        raise ConfigurationError(
            f"--env: {arguments.config} has no environment named {env!r}"
        )
    kek = KeyEncryptionKey.from_file(
        settings.encryption_key_file, setting="encryption_key_file"
    )
    engine = open_store(settings.store)
    clock = SystemClock()
    try:
        created = bootstrap_admin(
            engine,
            kek,
            clock,
            env,
            backends=settings.environments[env].backends,
            record=functools.partial(record_now, engine, clock),
        )
    except Conflict as error:
        sys.stderr.write(f"tokenbroker: {error.message}\n")
        return 1
    finally:
        engine.dispose()
    secret = created.secret.reveal_text()
    if arguments.json:
        sys.stdout.write(
            json.dumps(
                {
                    "env": env,
                    "client_id": ADMIN_SERVICE,
                    "client_secret": secret,
                    "credential_id": created.info.id,
                }
            )
            + "\n"
        )
    else:
        sys.stdout.write(
            f"Admin credential for {env} (shown once; keep it safe):\n"
            f"  client_id:     {ADMIN_SERVICE}\n  client_secret: {secret}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
