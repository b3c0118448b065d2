"""`serve --dev`: a broker with nothing to configure, for one machine.

Everything lives under `./.tokenbroker/`: the SQLite store, the `local` backend's
ciphertexts inside it, and the key-encryption key beside them. Keeping the key
next to the data is exactly what a real deployment must not do, so dev mode says
so loudly at every start.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import structlog

from service.bootstrap import ADMIN_SERVICE, bootstrap_admin
from service.broker import Broker
from service.config import EnvironmentConfig, Settings
from service.credentials import InvalidClient, check_fixed_secret
from service.crypto import KeyEncryptionKey
from service.errors import ConfigurationError, InvalidRequest
from service.sensitive import Sensitive

log = structlog.get_logger(__name__)

DEV_ENV = "dev"
FOLDER = Path(".tokenbroker")


def check_admin_secret(fixed_secret: str | None) -> None:
    """Refuse a `--dev-admin-secret` that cannot be a client secret, before
    anything is created. Raises ConfigurationError."""
    if fixed_secret is None:
        return
    try:
        check_fixed_secret(Sensitive.from_text(fixed_secret))
    except InvalidRequest as error:
        raise ConfigurationError(f"--dev-admin-secret: {error.message}") from None


def dev_settings(folder: Path, policies_dir: Path | None) -> Settings:
    """Settings for dev mode, creating the folder and its key on first use."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_file = folder / "encryption.key"
    if not key_file.exists():
        KeyEncryptionKey.generate().write(key_file)
    return Settings.model_construct(
        public_url=None,
        store=f"sqlite:///{(folder / 'state.db').resolve()}",
        encryption_key_file=key_file,
        environments={
            DEV_ENV: EnvironmentConfig(
                default_backend="local", backends={"local": {"type": "local"}}
            )
        },
        max_secret_bytes=65536,
        token_ttl_seconds=300,
        policies_dir=policies_dir,
        dev_mode=True,
    )


def ensure_dev_admin(
    broker: Broker, folder: Path, fixed_secret: str | None
) -> tuple[str, bool]:
    """The admin secret, and whether it is new (then it is shown once).

    An admin credential survives restarts through `admin.json`; a fixed secret
    that differs replaces it (the old one is revoked, audited as bootstrap's),
    and works from the moment this answers.
    """
    admin_file = folder / "admin.json"
    wanted = Sensitive.from_text(fixed_secret) if fixed_secret else None
    kept = _kept_secret(broker, admin_file)
    if kept is not None and (wanted is None or kept.equals(wanted)):
        return kept.reveal_text(), False

    created = bootstrap_admin(
        broker.engine,
        broker.kek,
        broker.clock,
        DEV_ENV,
        backends=broker.environments[DEV_ENV].backends,
        record=broker.audit.record,
        fixed_secret=wanted,
        replace=True,
        credentials=broker.credentials,
    )
    broker.reload_policy(broker.environments[DEV_ENV])
    secret = created.secret.reveal_text()
    _write_private(
        admin_file,
        json.dumps(
            {
                "env": DEV_ENV,
                "client_id": ADMIN_SERVICE,
                "client_secret": secret,
                "token_endpoint": f"{broker.environments[DEV_ENV].issuer}/token",
            },
            indent=2,
        )
        + "\n",
    )
    return secret, True


def _kept_secret(broker: Broker, admin_file: Path) -> Sensitive | None:
    try:
        saved = json.loads(admin_file.read_text(encoding="utf-8"))
        secret = Sensitive.from_text(saved["client_secret"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        broker.credentials.authenticate(DEV_ENV, ADMIN_SERVICE, secret)
    except InvalidClient:
        return None
    return secret


def _write_private(path: Path, content: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(content)
