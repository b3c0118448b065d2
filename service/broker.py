"""Assembling a broker from its settings, in one place.

Start-up opens the store and runs its migrations, loads the key-encryption key
(and refuses to start without one), builds every environment's backends, signing
keys and policy, and applies the policy folder if one is given.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from backends import registry
from service.audit import AuditLog
from service.clock import Clock, SystemClock
from service.compromise.service import CompromiseResponse
from service.config import Settings
from service.credentials import CredentialStore
from service.crypto import Envelope, KeyEncryptionKey
from service.environment import Environment
from service.errors import ConfigurationError, NotFound
from service.keys import KeyRing
from service.limits import Limits
from service.metrics import BrokerMetrics, metered
from service.overlap import check_overlaps
from service.policy_store import PolicyStore
from service.policy_sync import PolicySync
from service.refusals import RefusalBudget
from service.revocation_store import RevocationStore
from service.revocations import Revocations
from service.rotation.service import RotationService
from service.secret_access import SecretAccess
from service.secret_changes import SecretChanges
from service.store.database import open_store
from service.tokens import TokenAuthority

log = structlog.get_logger(__name__)


class Broker:
    """Everything a running broker holds: store, environments and services."""

    def __init__(
        self,
        settings: Settings,
        *,
        public_url: str,
        only_env: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.public_url = public_url.rstrip("/")
        self.clock = clock or SystemClock()
        check_overlaps(settings)
        self.kek = KeyEncryptionKey.from_file(
            settings.encryption_key_file, setting="encryption_key_file"
        )
        self.engine: Engine = open_store(settings.store)
        self.credentials = CredentialStore(self.engine, self.kek, self.clock)
        self.policies = PolicyStore(
            self.engine, self.clock, credentials=self.credentials
        )
        self.secrets = SecretAccess(
            self.clock, max_value_bytes=settings.max_secret_bytes
        )
        self.metrics = CollectorRegistry()
        self.observed = BrokerMetrics(self.metrics)
        self.secrets.cache_observer = self.observed.cache_observer("secret_read")
        self.audit = AuditLog(
            self.engine, self.clock, on_commit=self.observed.audit_committed
        )
        self.limits = Limits(settings.rate_limits, self.clock)
        self.refusals = RefusalBudget(settings.rate_limits, self.clock)
        self.revocations = Revocations(
            RevocationStore(self.engine, self.clock),
            self.audit,
            self.clock,
            settings.revocation,
            source=self.public_url,
            registry=self.metrics,
        )
        names = _served(settings, only_env)
        self.environments = {name: self._build_environment(name) for name in names}
        self.revocations.load(self.engine)
        self.secret_changes = SecretChanges(
            self.engine, self.clock, settings.revocation,
            envs=self.environments, forget=self.secrets.forget,
        )  # fmt: skip
        self.secret_changes.attach(self.revocations.feed)
        self.secrets.changes = self.secret_changes
        self.rotation = RotationService(
            engine=self.engine,
            environments=self.environments,
            settings=settings.rotation,
            webhooks=settings.webhooks,
            clock=self.clock,
            registry=self.metrics,
            secrets=self.secrets,
            source=self.public_url,
            audit=self.audit,
        )
        self.revocations.publish = self.rotation.webhooks.publish
        self.policies.generators = self.rotation.generators.check
        self.compromise = CompromiseResponse(
            engine=self.engine, clock=self.clock, environments=self.environments,
            revocations=self.revocations, rotation=self.rotation,
            secrets=self.secrets, credentials=self.credentials, audit=self.audit,
            settings=settings.revocation, source=self.public_url,
        )  # fmt: skip
        self.compromise.attach(self.revocations.feed)
        if settings.policies_dir is not None:
            self.load_policy_folder(settings.policies_dir)
        # After the folder: what it applied is this process's starting point.
        self.policy_sync = PolicySync(
            self.policies, self.environments, self.reload_policy
        )
        self.policy_sync.attach(self.revocations.feed, settings.revocation.poll_seconds)
        log.info("broker_ready", environments=sorted(self.environments))

    def environment(self, name: str) -> Environment:
        """The environment by name. Raises NotFound for any other."""
        try:
            return self.environments[name]
        except KeyError:
            raise NotFound("this broker serves no environment of that name") from None

    def reload_policy(self, environment: Environment) -> None:
        policy, revision = self.policies.load(environment.name, environment.backends)
        environment.use_policy(policy, revision)

    def load_policy_folder(self, folder: Path) -> None:
        """Apply policy files: `folder/ENV/*.yaml`, or `folder/*.yaml` for one env."""
        if not folder.is_dir():
            raise ConfigurationError(f"policies: {folder} is not a folder")
        for environment in self.environments.values():
            own = folder / environment.name
            if own.is_dir():
                source = own
            elif len(self.environments) == 1:
                source = folder
            else:
                continue
            # The intent first, as for every change: a store that cannot audit
            # refuses to start before any document of the folder is applied.
            self.audit.record(
                environment.name, "policy.apply", "requested", actor="file",
                folder=str(source),
            )  # fmt: skip
            applied = self.policies.load_folder(
                environment.name, source, backends=environment.backends
            )
            self.reload_policy(environment)
            log.info("policy_folder_loaded", env=environment.name, documents=applied)
            for document in applied:
                self.audit.record(
                    environment.name, "policy.apply", actor="file", target=document
                )

    def close(self) -> None:
        self.rotation.stop()
        self.revocations.stop()
        for environment in self.environments.values():
            for backend in environment.backends.values():
                backend.close()
        self.refusals.flush(self.audit, everything=True)
        self.audit.close()
        self.engine.dispose()

    def _build_environment(self, name: str) -> Environment:
        config = self.settings.environments[name]
        context = registry.BackendContext(
            env=name, engine=self.engine, envelope=Envelope(self.kek), clock=self.clock
        )
        backends = {
            backend_name: metered(
                registry.build(
                    backend_name,
                    registry.parse_config(
                        f"environments.{name}.backends.{backend_name}", options
                    ),
                    context,
                ),
                name,
                self.observed,
            )
            for backend_name, options in config.backends.items()
        }
        keyring = KeyRing(
            name, self.engine, self.kek, self.clock, self.settings.signing_keys
        )
        keyring.load()
        revoked = self.revocations.serve(name, keyring)
        issuer = f"{self.public_url}/v1/{name}"
        policy, revision = self.policies.load(name, backends)
        return Environment(
            name,
            issuer=issuer,
            tokens=TokenAuthority(name, issuer, keyring, self.clock, revoked=revoked),
            backends=backends,
            default_backend=config.default_backend,
            policy=policy,
            policy_revision=revision,
        )


def _served(settings: Settings, only_env: str | None) -> Iterable[str]:
    if only_env is None:
        return list(settings.environments)
    if only_env not in settings.environments:
        raise ConfigurationError(
            f"--env: the configuration has no environment named {only_env!r}"
        )
    return [only_env]
