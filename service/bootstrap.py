"""An environment's first admin: a policy that names it and its one credential.

Used by `tokenbroker bootstrap` for real deployments and by `serve --dev`; both
audit it the same way, as the actor `bootstrap`: each change is recorded as
`requested` before it is made and `ok` after, as the API records its changes
(service/audit_http.py), through whichever recorder the caller has.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import structlog
from sqlalchemy import Engine

from service.audit import AuditUnavailable
from service.clock import Clock
from service.credentials import CredentialStore, NewCredential, check_fixed_secret
from service.crypto import KeyEncryptionKey
from service.errors import Conflict
from service.policy_store import PolicyStore
from service.sensitive import Sensitive

log = structlog.get_logger(__name__)

ADMIN_SERVICE = "admin"
ACTOR = "bootstrap"
ADMIN_DOCUMENT = "bootstrap-admin"
ADMIN_POLICY = f"""\
# Written by `tokenbroker bootstrap`: the service `{ADMIN_SERVICE}` administers
# this environment. Replace or delete it once other admins exist.
services:
  {ADMIN_SERVICE}:
    admin: true
"""


class Recorder(Protocol):
    """`AuditLog.record`, or `record_now` bound to a store: commits one event."""

    def __call__(
        self, env: str, action: str, outcome: str, **fields: Any
    ) -> object: ...


def bootstrap_admin(
    engine: Engine,
    kek: KeyEncryptionKey,
    clock: Clock,
    env: str,
    *,
    backends: Collection[str],
    record: Recorder,
    fixed_secret: Sensitive | None = None,
    replace: bool = False,
    credentials: CredentialStore | None = None,
) -> NewCredential:
    """Create the admin policy (if missing) and an admin credential.

    Raises InvalidRequest for a `fixed_secret` too short, and Conflict when the
    environment has an admin credential already, unless `replace` revokes the
    existing ones first (dev mode only); AuditUnavailable, before anything is
    changed, when the audit cannot record. `credentials` is the running
    broker's store, whose cache must not keep the revoked secret working.
    """
    if fixed_secret is not None:
        check_fixed_secret(fixed_secret)
    policies = PolicyStore(engine, clock)
    if ADMIN_DOCUMENT not in dict(policies.names(env)):
        with _audited(record, env, "policy.apply", target=ADMIN_DOCUMENT) as done:
            applied = policies.put(
                env,
                ADMIN_DOCUMENT,
                ADMIN_POLICY,
                "application/yaml",
                backends=backends,
                actor=ACTOR,
            )
            done["version"] = str(applied.revision)
    credentials = credentials or CredentialStore(engine, kek, clock)
    existing = credentials.list(env, ADMIN_SERVICE)
    if existing and not replace:
        raise Conflict(
            f"environment {env!r} already has an admin credential; "
            "use it to create more"
        )
    for info in existing:
        with _audited(
            record, env, "credential.revoke", target=ADMIN_SERVICE, version=info.id
        ):
            credentials.revoke(env, ADMIN_SERVICE, info.id)
    with _audited(record, env, "credential.create", target=ADMIN_SERVICE) as done:
        created = credentials.create(env, ADMIN_SERVICE, fixed_secret=fixed_secret)
        done["version"] = created.info.id
    return created


@contextmanager
def _audited(
    record: Recorder, env: str, action: str, **fields: Any
) -> Iterator[dict[str, Any]]:
    """The intent recorded before the block, its outcome after.

    As in the API, an outcome that cannot be recorded does not undo the change
    (nor hide the credential, shown only this once): it is logged instead.
    """
    record(env, action, "requested", actor=ACTOR, **fields)
    outcome: dict[str, Any] = {}
    yield outcome
    try:
        record(env, action, "ok", actor=ACTOR, **fields, **outcome)
    except AuditUnavailable:
        log.error("audit_outcome_unrecorded", env=env, action=action, **fields)
