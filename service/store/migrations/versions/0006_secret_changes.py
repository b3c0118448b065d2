"""secret changes: what every process's read cache must drop

Revision ID: 0006_secret_changes
Revises: 0005_compromise
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_secret_changes"
down_revision = "0005_compromise"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "secret_changes",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("env", sa.String(length=32), nullable=False),
        sa.Column("secret", sa.String(length=256), nullable=False),
        sa.Column("cause", sa.String(length=16), nullable=False),
        sa.Column("changed_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secret_changes")),
    )
    # The poll reads by environment and time.
    op.create_index(
        op.f("ix_secret_changes_env_changed_at"),
        "secret_changes",
        ["env", "changed_at"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_secret_changes_env_changed_at"), table_name="secret_changes")
    op.drop_table("secret_changes")
