"""audit: hash-chained records, chain heads, policy revisions

Revision ID: 0003_audit
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_audit"
down_revision = "0002_rotation"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "audit_records",
        sa.Column("env", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=True),
        sa.Column("target", sa.String(length=512), nullable=True),
        sa.Column("version", sa.String(length=128), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("env", "seq", name=op.f("pk_audit_records")),
    )
    op.create_table(
        "audit_heads",
        sa.Column("env", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("env", name=op.f("pk_audit_heads")),
    )
    op.create_table(
        "policy_revisions",
        sa.Column("env", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("revision", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("media_type", sa.String(length=64), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint(
            "env", "name", "revision", name=op.f("pk_policy_revisions")
        ),
    )


def downgrade() -> None:
    op.drop_table("policy_revisions")
    op.drop_table("audit_heads")
    op.drop_table("audit_records")
