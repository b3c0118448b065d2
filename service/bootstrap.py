"""An environment's first admin: a policy that names it and its one credential.

Used by `tokenbroker bootstrap` for real deployments and by `serve --dev`.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Engine

from service.clock import Clock
from service.credentials import CredentialStore, NewCredential
from service.crypto import KeyEncryptionKey
from service.errors import Conflict
from service.policy_store import PolicyStore
from service.sensitive import Sensitive

ADMIN_SERVICE = "admin"
ADMIN_DOCUMENT = "bootstrap-admin"
ADMIN_POLICY = f"""\
# Written by `tokenbroker bootstrap`: the service `{ADMIN_SERVICE}` administers
# this environment. Replace or delete it once other admins exist.
services:
  {ADMIN_SERVICE}:
    admin: true
"""


def bootstrap_admin(
    engine: Engine,
    kek: KeyEncryptionKey,
    clock: Clock,
    env: str,
    *,
    backends: Collection[str],
    fixed_secret: Sensitive | None = None,
    replace: bool = False,
) -> NewCredential:
    """Create the admin policy (if missing) and an admin credential.

    Raises Conflict when the environment has an admin credential already, unless
    `replace` revokes the existing ones first (dev mode only).
    """
    policies = PolicyStore(engine, clock)
    if ADMIN_DOCUMENT not in dict(policies.names(env)):
        policies.put(
            env,
            ADMIN_DOCUMENT,
            ADMIN_POLICY,
            "application/yaml",
            backends=backends,
            actor="bootstrap",
        )
    credentials = CredentialStore(engine, kek, clock)
    existing = credentials.list(env, ADMIN_SERVICE)
    if existing and not replace:
        raise Conflict(
            f"environment {env!r} already has an admin credential; "
            "use it to create more"
        )
    for info in existing:
        credentials.revoke(env, ADMIN_SERVICE, info.id)
    return credentials.create(env, ADMIN_SERVICE, fixed_secret=fixed_secret)
