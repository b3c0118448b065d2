"""Keeping an environment's policy documents in the store, and applying them.

A document is validated on its own, then together with the others (one secret
declared twice, a backend the environment does not have), and only then stored:
a document that would break the environment's policy is refused whole.

Every change is announced to the other broker processes in its own transaction,
and counted by `marker`, so that each reloads it (service/policy_sync.py).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Engine, delete, func, insert, select, update

from policies.evaluate import Policy, ServiceChange, diff
from policies.model import (
    GeneratorCheck,
    PolicyDocument,
    parse_document,
    validate_document_name,
)
from service.admins import keep_an_admin
from service.clock import Clock, utc
from service.credentials import CredentialStore
from service.errors import InvalidRequest, NotFound, PolicyInvalid
from service.policy_history import next_revision, record_revision
from service.store.audit_tables import policy_revisions
from service.store.notify import notify
from service.store.tables import policy_documents

log = structlog.get_logger(__name__)

POLICY_FILE_SUFFIXES = {".yaml": "application/yaml", ".yml": "application/yaml",
                        ".json": "application/json"}  # fmt: skip


@dataclass(frozen=True)
class Applied:
    """The outcome of putting a document: the new policy and what changed."""

    name: str
    revision: int
    policy: Policy
    changes: dict[str, ServiceChange]


class PolicyStore:
    """The named policy documents of every environment.

    `generators` checks the generators of every document put (the broker's
    registry); documents already stored are read back without it. With
    `credentials`, a change that would leave no admin able to sign in is
    refused (service/admins.py).
    """

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        generators: GeneratorCheck | None = None,
        credentials: CredentialStore | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self.generators = generators
        self._credentials = credentials

    def load(self, env: str, backends: Collection[str]) -> tuple[Policy, int]:
        """The environment's policy from every stored document, and its revision."""
        documents = {
            row.name: parse_document(row.name, row.source, row.media_type)
            for row in self._rows(env)
        }
        return self._combine(documents, backends), self.revision(env)

    def revision(self, env: str) -> int:
        """A number that grows with every change to the environment's documents."""
        with self._engine.connect() as connection:
            total = connection.execute(
                select(func.coalesce(func.sum(policy_documents.c.revision), 0)).where(
                    policy_documents.c.env == env
                )
            ).scalar_one()
        return int(total)

    def marker(self, env: str) -> int:
        """A number that changes with every change to the environment's
        documents, deletions included: how many revisions it has kept."""
        with self._engine.connect() as connection:
            count = connection.execute(
                select(func.count())
                .select_from(policy_revisions)
                .where(policy_revisions.c.env == env)
            ).scalar_one()
        return int(count)

    def put(
        self,
        env: str,
        name: str,
        source: str,
        media_type: str,
        *,
        backends: Collection[str],
        actor: str,
        dry_run: bool = False,
    ) -> Applied:
        """Validate and (unless `dry_run`) store a document.

        Raises PolicyInvalid, and Conflict when it would lock the admins out.
        """
        _check_name(name)
        document = parse_document(name, source, media_type, generators=self.generators)
        stored = {row.name: row for row in self._rows(env)}
        documents = {
            other: parse_document(other, row.source, row.media_type)
            for other, row in stored.items()
            if other != name
        }
        old = self._combine({**documents, **_maybe(stored, name)}, backends)
        new = self._combine({**documents, name: document}, backends)
        self._keep_an_admin(env, old, new)
        with self._engine.connect() as connection:
            revision = next_revision(connection, env, name)
        if not dry_run:
            self._save(env, name, source, media_type, revision, actor, name in stored)
            log.info("policy_applied", env=env, document=name, revision=revision,
                     actor=actor)  # fmt: skip
        return Applied(name, revision, new, diff(old, new))

    def delete(
        self, env: str, name: str, *, backends: Collection[str], actor: str = "-"
    ) -> Policy:
        """Remove a document and answer the policy without it.

        Raises NotFound, and Conflict when it would lock the admins out.
        """
        if self._credentials is not None:
            stored = {
                row.name: parse_document(row.name, row.source, row.media_type)
                for row in self._rows(env)
            }
            if name in stored:
                before = self._combine(stored, backends)
                stored.pop(name)
                self._keep_an_admin(env, before, self._combine(stored, backends))
        with self._engine.begin() as connection:
            revision = next_revision(connection, env, name)
            removed = connection.execute(
                delete(policy_documents).where(
                    policy_documents.c.env == env, policy_documents.c.name == name
                )
            ).rowcount
            if removed:
                record_revision(
                    connection,
                    env,
                    name,
                    revision=revision,
                    source="",
                    media_type="",
                    actor=actor,
                    at=utc(self._clock.now()),
                    deleted=True,
                )
                notify(connection, {"type": "policy", "env": env})
        if not removed:
            raise NotFound("no policy document of that name")
        log.info("policy_deleted", env=env, document=name)
        return self.load(env, backends)[0]

    def source(self, env: str, name: str) -> tuple[str, str, int]:
        """A stored document's text, media type and revision. Raises NotFound."""
        for row in self._rows(env):
            if row.name == name:
                return row.source, row.media_type, row.revision
        raise NotFound("no policy document of that name")

    def names(self, env: str) -> list[tuple[str, int]]:
        return [(row.name, row.revision) for row in self._rows(env)]

    def load_folder(
        self, env: str, folder: Path, *, backends: Collection[str]
    ) -> list[str]:
        """Apply every policy file of a folder, each named after its file."""
        files = sorted(
            path
            for path in folder.iterdir()
            if path.is_file() and path.suffix in POLICY_FILE_SUFFIXES
        )
        for path in files:
            self.put(
                env,
                path.stem,
                path.read_text(encoding="utf-8"),
                POLICY_FILE_SUFFIXES[path.suffix],
                backends=backends,
                actor=f"file:{path.name}",
            )
        return [path.stem for path in files]

    def _keep_an_admin(self, env: str, before: Policy, after: Policy) -> None:
        if self._credentials is not None:
            keep_an_admin(env, before, after, self._credentials)

    def _combine(
        self, documents: dict[str, PolicyDocument], backends: Collection[str]
    ) -> Policy:
        problems = [
            f"policy {document!r}: secrets.{secret}.backend: this environment has "
            "no backend by that name"
            for document, parsed in documents.items()
            for secret, declaration in parsed.secrets.items()
            if declaration.backend is not None and declaration.backend not in backends
        ]
        if problems:
            raise PolicyInvalid(problems[0], problems)
        return Policy.from_documents(documents)

    def _rows(self, env: str) -> list[Any]:
        with self._engine.connect() as connection:
            return list(
                connection.execute(
                    select(policy_documents)
                    .where(policy_documents.c.env == env)
                    .order_by(policy_documents.c.name)
                ).all()
            )

    def _save(
        self,
        env: str,
        name: str,
        source: str,
        media_type: str,
        revision: int,
        actor: str,
        exists: bool,
    ) -> None:
        values = {
            "source": source,
            "media_type": media_type,
            "revision": revision,
            "updated_at": utc(self._clock.now()),
            "updated_by": actor,
        }
        with self._engine.begin() as connection:
            if exists:
                connection.execute(
                    update(policy_documents)
                    .where(
                        policy_documents.c.env == env, policy_documents.c.name == name
                    )
                    .values(**values)
                )
            else:
                connection.execute(
                    insert(policy_documents).values(env=env, name=name, **values)
                )
            record_revision(
                connection,
                env,
                name,
                revision=revision,
                source=source,
                media_type=media_type,
                actor=actor,
                at=utc(self._clock.now()),
            )
            notify(connection, {"type": "policy", "env": env})


def _maybe(stored: dict[str, Any], name: str) -> dict[str, PolicyDocument]:
    if name not in stored:
        return {}
    row = stored[name]
    return {name: parse_document(name, row.source, row.media_type)}


def _check_name(name: str) -> None:
    try:
        validate_document_name(name)
    except ValueError as error:
        raise InvalidRequest(str(error)) from None
