"""Keeping an environment administrable: someone must still be able to sign in
as an admin after any change.

A policy change (a document put or deleted) or a credential revocation that
would take an environment from at least one admin service with a live
credential to none is refused with 409: its last admin could not undo it, and
`tokenbroker bootstrap` refuses an environment whose admin still has a
credential. An environment that has no such admin yet (before bootstrap, or
while policies are first applied from files) is not held to it. The way back
from an environment locked out all the same is README's "Running for real":
`serve --policies DIR` with a document that makes a credentialed service admin.
"""

from __future__ import annotations

from policies.evaluate import Policy
from service.credentials import CredentialStore
from service.errors import Conflict

LOCKOUT = (
    "this change would leave the environment with no admin service that has a "
    "live credential, and nobody could undo it; make another service with a "
    "credential admin first"
)


def keep_an_admin(
    env: str, before: Policy, after: Policy, credentials: CredentialStore
) -> None:
    """Raise Conflict when `after` leaves no credentialed admin that `before` had."""
    if _credentialed(env, before.admins, credentials) and not _credentialed(
        env, after.admins, credentials
    ):
        raise Conflict(LOCKOUT)


def keep_an_admin_credential(
    env: str,
    policy: Policy,
    credentials: CredentialStore,
    service: str,
    credential_id: str,
) -> None:
    """Raise Conflict when revoking the credential leaves no credentialed admin."""
    others = policy.admins - {service}
    if service not in policy.admins or _credentialed(env, others, credentials):
        return
    live = [info.id for info in credentials.list(env, service)]
    if credential_id in live and len(live) == 1:
        raise Conflict(LOCKOUT)


def _credentialed(
    env: str, services: frozenset[str], credentials: CredentialStore
) -> bool:
    return any(credentials.has_any(env, service) for service in sorted(services))
