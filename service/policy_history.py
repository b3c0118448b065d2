"""Every revision of every policy document, kept for good.

The policy store writes a revision in the same transaction as the change it
records, deletions included (as a revision marked deleted), so the history and
the live documents can never disagree. Revision numbers keep growing through a
deletion: a document created again continues where the old one stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, func, insert, select

from service.errors import NotFound
from service.store.audit_tables import policy_revisions
from service.store.tables import policy_documents


@dataclass(frozen=True, slots=True)
class Revision:
    """One revision of a document: who changed it, when, and to what."""

    name: str
    revision: int
    deleted: bool
    media_type: str
    created_at: datetime
    created_by: str
    source: str


def next_revision(connection: Connection, env: str, name: str) -> int:
    """The number the document's next revision takes."""
    kept = connection.execute(
        select(func.max(policy_revisions.c.revision)).where(
            policy_revisions.c.env == env, policy_revisions.c.name == name
        )
    ).scalar()
    # Documents stored before the history existed have revisions of their own.
    live = connection.execute(
        select(policy_documents.c.revision).where(
            policy_documents.c.env == env, policy_documents.c.name == name
        )
    ).scalar()
    return max(kept or 0, live or 0) + 1


def record_revision(
    connection: Connection,
    env: str,
    name: str,
    *,
    revision: int,
    source: str,
    media_type: str,
    actor: str,
    at: datetime,
    deleted: bool = False,
) -> None:
    """Keep one revision, inside the caller's transaction."""
    connection.execute(
        insert(policy_revisions).values(
            env=env,
            name=name,
            revision=revision,
            media_type=media_type,
            source=source,
            deleted=deleted,
            created_at=at,
            created_by=actor[:128],
        )
    )


def revisions(engine: Engine, env: str, name: str) -> list[Revision]:
    """A document's revisions, oldest first. Raises NotFound when it has none."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(policy_revisions)
            .where(policy_revisions.c.env == env, policy_revisions.c.name == name)
            .order_by(policy_revisions.c.revision)
        ).all()
    if not rows:
        raise NotFound("no policy document of that name was ever stored")
    return [
        Revision(
            row.name,
            row.revision,
            row.deleted,
            row.media_type,
            row.created_at,
            row.created_by,
            row.source,
        )
        for row in rows
    ]
