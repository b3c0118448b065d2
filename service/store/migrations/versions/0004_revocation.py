"""revocation: revoked tokens, services and keys; key activation times

Revision ID: 0004_revocation
Revises: 0003_audit
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_revocation"
down_revision = "0003_audit"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "revocations",
        sa.Column("env", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("revoked_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("recorded_at", TIME, nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.String(length=256), nullable=True),
        sa.PrimaryKeyConstraint("env", "kind", "subject", name=op.f("pk_revocations")),
    )
    # The poll reads by environment and time: without both in one index, the
    # primary key's `env` prefix wins and every poll scans the environment.
    op.create_index(
        op.f("ix_revocations_env_recorded_at"), "revocations", ["env", "recorded_at"]
    )
    op.create_index(op.f("ix_revocations_expires_at"), "revocations", ["expires_at"])
    # When a key first signs; published in the JWKS from `created_at` (case C10).
    # Keys from before this column sign from their creation.
    with op.batch_alter_table("signing_keys") as batch:
        batch.add_column(sa.Column("activates_at", TIME, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("signing_keys") as batch:
        batch.drop_column("activates_at")
    op.drop_index(op.f("ix_revocations_expires_at"), table_name="revocations")
    op.drop_index(op.f("ix_revocations_env_recorded_at"), table_name="revocations")
    op.drop_table("revocations")
