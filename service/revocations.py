"""Revocation: one call stops a token, a service or a signing key everywhere.

The interface other parts build on (the secret-compromise and break-glass
responses among them) is `Broker.revocations`, a `Revocations`:

    revoke_jti(env, jti, expires_at=None, reason=..., actor=...)
        one token by its id; without `expires_at`, kept until the last moment
        any token of the environment could be valid
    revoke_token(principal, reason=..., actor=...)
        one token already verified (its expiry is known)
    revoke_jtis(env, [(jti, expires_at), ...], reason=..., actor=...)
        many tokens at once, in one transaction (a compromise's readers)
    revoke_service(env, service, disable=False, reason=..., actor=...)
        every token the service holds (issued at or before now); `disable`
        also refuses new tokens (`invalid_client`) until `enable_service`
    enable_service(env, service, reason=..., actor=...)
        let a disabled service get tokens again; tokens from before stay dead
    revoke_key(env, kid, reason=..., actor=...)
        every token signed by the key; the key leaves the JWKS at once and is
        replaced by a key that signs at once when it was the signing one
    is_revoked(principal) / is_disabled(env, service)
        the O(1) checks, from memory

Each call takes effect in this process before it returns, is enforced by every
other process on the same store within the feed's bound
(service/revocation_feed.py), is audited (`token.revoke`, `service.revoke`,
`service.disable`, `service.enable`, `key.revoke`, `key.create`) and emits a
CloudEvent `tokenbroker.revocation.{token,tokens,service,service_enabled,key}`
through the webhook dispatcher. Every call also takes keyword `request_id` and
`source` for the audit record. Calls block on the store and the audit log: from
the event loop, run them in a thread.

When the audit log cannot record, the revocation stands (undoing it would
reopen the hole) and AuditUnavailable is raised: the caller retries, which
changes nothing but records it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import Engine

from service.audit import AuditLog, AuditUnavailable
from service.clock import Clock
from service.errors import NotFound
from service.keys import KeyRing, RevokedKey
from service.revocation_feed import Chore, RevocationFeed, RevocationSettings
from service.revocation_set import Kind, Revocation, RevocationSet
from service.revocation_store import RevocationStore
from service.tokens import Principal

log = structlog.get_logger(__name__)

Publisher = Callable[[dict[str, Any]], None]
# A token issued right after a service-wide revocation waits at most this long
# for the next second (see RevocationSet.issuable_from).
MAX_ISSUE_WAIT_SECONDS = 1.0
# Token ids per audit record and per event of a bulk revocation.
JTI_CHUNK = 200


class Revocations:
    """Revocations of every environment this process serves."""

    def __init__(
        self,
        store: RevocationStore,
        audit: AuditLog,
        clock: Clock,
        settings: RevocationSettings,
        *,
        source: str,
        registry: CollectorRegistry,
    ) -> None:
        self.store = store
        self.settings = settings
        # Set by the broker once the webhook dispatcher exists.
        self.publish: Publisher = _nowhere
        self._audit = audit
        self._clock = clock
        self._source = source
        self._sets: dict[str, RevocationSet] = {}
        self._keyrings: dict[str, KeyRing] = {}
        self._feed: RevocationFeed | None = None
        self._counter = Counter(
            "tokenbroker_revocations",
            "Revocations made through this process, by kind.",
            ["env", "kind"],
            registry=registry,
        )

    def serve(self, env: str, keyring: KeyRing) -> RevocationSet:
        """The revocation set of `env`, wired to drop keys from its key ring."""
        revoked = RevocationSet(env)
        revoked.on_key_revoked = keyring.drop
        self._sets[env] = revoked
        self._keyrings[env] = keyring
        return revoked

    def load(self, engine: Engine) -> RevocationFeed:
        """Read what is revoked now and prepare the feed that keeps it current."""
        started = self._clock.now()
        for revocation in self.store.current(self._sets):
            self._sets[revocation.env].apply(revocation)
        feed = RevocationFeed(
            self.store,
            engine,
            self.settings,
            self._clock,
            envs=self._sets,
            apply=self._apply,
            keys_changed=self._keys_changed,
        )
        feed.caught_up_at(started)
        feed.chores.append(Chore("prune", self.settings.prune_seconds, self.prune))
        for keyring in self._keyrings.values():
            feed.chores.append(
                Chore("signing_keys", keyring.settings.check_seconds, keyring.load)
            )
        self._feed = feed
        log.info("revocations_loaded", **self._counts())
        return feed

    @property
    def feed(self) -> RevocationFeed:
        if self._feed is None:
            raise RuntimeError("Revocations.load has not run")
        return self._feed

    def start(self) -> None:
        self.feed.start()

    def stop(self) -> None:
        if self._feed is not None:
            self._feed.stop()

    def is_revoked(self, principal: Principal) -> bool:
        revoked = self._sets.get(principal.env)
        return revoked is None or revoked.revoked(principal) is not None

    def is_disabled(self, env: str, service: str) -> bool:
        return self._set(env).disabled(service)

    async def wait_until_issuable(self, env: str, service: str) -> None:
        """Wait out the second of a service-wide revocation, if it is this one."""
        wait = self._set(env).issuable_from(service) - self._clock.now()
        if 0 < wait <= MAX_ISSUE_WAIT_SECONDS:
            await asyncio.sleep(wait)

    def revoke_jti(
        self,
        env: str,
        jti: str,
        expires_at: float | None = None,
        *,
        reason: str | None,
        actor: str,
        **context: str | None,
    ) -> Revocation:
        """Revoke one token by its id."""
        until = expires_at if expires_at is not None else self._last_token_end(env)
        revocation = Revocation(env, Kind.TOKEN, jti, self._clock.now(), until)
        stored = self._record(revocation, actor, reason)
        self._report(stored, "token.revoke", actor, reason, context)
        return stored

    def revoke_token(
        self,
        principal: Principal,
        *,
        reason: str | None,
        actor: str,
        **context: str | None,
    ) -> Revocation:
        """Revoke one verified token, kept until it expires."""
        return self.revoke_jti(
            principal.env,
            principal.jti,
            principal.expires_at,
            reason=reason,
            actor=actor,
            **context,
        )

    def revoke_jtis(
        self,
        env: str,
        tokens: Sequence[tuple[str, float]],
        *,
        reason: str | None,
        actor: str,
        **context: str | None,
    ) -> int:
        """Revoke many tokens by (jti, expiry) at once; answer how many.

        One transaction and one announcement for all (the other processes
        read the table back); one audit record `token.revoke` and one event
        `tokens` for every `JTI_CHUNK` of them, each naming its ids.
        """
        if not tokens:
            return 0
        self._set(env)
        now = self._clock.now()
        found = [Revocation(env, Kind.TOKEN, jti, now, until) for jti, until in tokens]
        self.store.record_many(found, actor=actor, reason=reason)
        for revocation in found:
            self._apply(revocation)
        self._counter.labels(env, Kind.TOKEN.value).inc(len(found))
        for start in range(0, len(found), JTI_CHUNK):
            chunk = found[start : start + JTI_CHUNK]
            jtis = [revocation.subject for revocation in chunk]
            log.info("revoked", env=env, action="token.revoke", tokens=len(jtis),
                     actor=actor)  # fmt: skip
            self._audit_step(
                env, "token.revoke", actor, jtis[0], reason, context, jtis=jtis,
                tokens=len(jtis),
            )  # fmt: skip
            detail = {"jtis": jtis, "tokens": len(jtis)}
            self.publish(self._cloud_event("tokens", chunk[0], actor, reason, detail))
        return len(found)

    def revoke_service(
        self,
        env: str,
        service: str,
        disable: bool = False,
        *,
        reason: str | None,
        actor: str,
        **context: str | None,
    ) -> Revocation:
        """Revoke every token of a service; with `disable`, refuse new ones."""
        now = self._clock.now()
        revocation = Revocation(
            env, Kind.SERVICE, service, now, self._last_token_end(env), disable
        )
        stored = self._record(revocation, actor, reason)
        self._report(
            stored, "service.revoke", actor, reason, context, revoked_before=_iso(now)
        )
        if disable:
            self._audit_step(env, "service.disable", actor, service, reason, context)
        return stored

    def enable_service(
        self,
        env: str,
        service: str,
        *,
        reason: str | None,
        actor: str,
        **context: str | None,
    ) -> Revocation:
        """Let a disabled service get tokens again."""
        revocation = Revocation(
            env, Kind.SERVICE, service, self._clock.now(), self._last_token_end(env)
        )
        stored = self._record(revocation, actor, reason, enable=True)
        self._report(
            stored, "service.enable", actor, reason, context, event="service_enabled"
        )
        return stored

    def revoke_key(
        self,
        env: str,
        kid: str,
        *,
        reason: str | None,
        actor: str,
        **context: str | None,
    ) -> RevokedKey:
        """Revoke a signing key and every token it signed. Raises NotFound."""
        keyring = self._keyrings.get(env)
        if keyring is None:
            raise NotFound(f"no environment named {env!r}")
        revoked = keyring.revoke(kid)
        revocation = Revocation(
            env, Kind.KEY, kid, self._clock.now(), revoked.not_after
        )
        stored = self._record(revocation, actor, reason)
        self._report(
            stored,
            "key.revoke",
            actor,
            reason,
            context,
            kid=kid,
            replacement=revoked.replacement,
        )
        if revoked.replacement is not None:
            self._audit_step(
                env,
                "key.create",
                actor,
                revoked.replacement,
                "replaces a revoked key",
                context,
            )
        return revoked

    def last_token_end(self, env: str) -> float:
        """The last moment any token of `env` issued until now can be valid."""
        return self._last_token_end(env)

    def prune(self) -> int:
        """Drop expired revocations from memory and from the store."""
        now = self._clock.now()
        dropped = sum(revoked.prune(now) for revoked in self._sets.values())
        deleted = self.store.prune()
        if dropped or deleted:
            log.info("revocations_pruned", dropped=dropped, deleted=deleted)
        return dropped

    def _record(
        self,
        revocation: Revocation,
        actor: str,
        reason: str | None,
        *,
        enable: bool = False,
    ) -> Revocation:
        self._set(revocation.env)
        stored = self.store.record(
            revocation, actor=actor, reason=reason, enable=enable
        )
        self._apply(stored)
        return stored

    def _apply(self, revocation: Revocation) -> None:
        revoked = self._sets.get(revocation.env)
        if revoked is not None and revoked.apply(revocation):
            log.debug(
                "revocation_applied",
                env=revocation.env,
                kind=revocation.kind.value,
                subject=revocation.subject,
                disabled=revocation.disabled,
            )
            if revocation.kind is Kind.KEY:
                self._keys_changed(revocation.env)

    def _keys_changed(self, env: str) -> None:
        keyring = self._keyrings.get(env)
        if keyring is not None:
            keyring.load()

    def _report(
        self,
        revocation: Revocation,
        action: str,
        actor: str,
        reason: str | None,
        context: dict[str, str | None],
        *,
        event: str | None = None,
        **detail: Any,
    ) -> None:
        env = revocation.env
        self._counter.labels(env, revocation.kind.value).inc()
        log.info(
            "revoked",
            env=env,
            action=action,
            subject=revocation.subject,
            actor=actor,
            disabled=revocation.disabled,
        )
        self._audit_step(
            env,
            action,
            actor,
            revocation.subject,
            reason,
            context,
            disabled=revocation.disabled or None,
            **detail,
        )
        self.publish(
            self._cloud_event(
                event or revocation.kind.value, revocation, actor, reason, detail
            )
        )

    def _audit_step(
        self,
        env: str,
        action: str,
        actor: str,
        target: str,
        reason: str | None,
        context: dict[str, str | None],
        **detail: Any,
    ) -> None:
        try:
            self._audit.record(
                env,
                action,
                "ok",
                actor=actor,
                target=target,
                reason=reason,
                request_id=context.get("request_id"),
                source=context.get("source"),
                **detail,
            )
        except AuditUnavailable:
            log.error("revocation_unaudited", env=env, action=action)
            raise

    def _cloud_event(
        self,
        name: str,
        revocation: Revocation,
        actor: str,
        reason: str | None,
        detail: dict[str, Any],
    ) -> dict[str, Any]:
        env = revocation.env
        return {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": f"{self._source}/v1/{env}",
            "type": f"tokenbroker.revocation.{name}",
            "subject": revocation.subject,
            "time": _iso(self._clock.now()),
            "datacontenttype": "application/json",
            "tokenbrokerenv": env,
            "data": {
                "env": env,
                "kind": revocation.kind.value,
                "subject": revocation.subject,
                "revoked_at": _iso(revocation.revoked_at),
                "disabled": revocation.disabled,
                "actor": actor,
                "reason": reason,
                **{key: value for key, value in detail.items() if value is not None},
            },
        }

    def _last_token_end(self, env: str) -> float:
        keyring = self._keyrings.get(env)
        if keyring is None:
            raise NotFound(f"no environment named {env!r}")
        return keyring.latest_end()

    def _set(self, env: str) -> RevocationSet:
        try:
            return self._sets[env]
        except KeyError:
            raise NotFound(f"no environment named {env!r}") from None

    def _counts(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for revoked in self._sets.values():
            for kind, count in revoked.counts().items():
                totals[kind] = totals.get(kind, 0) + count
        return totals


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat()


def _nowhere(_event: dict[str, Any]) -> None:
    return None
