"""compromise: token reads, compromise reports and their exposure

Revision ID: 0005_compromise
Revises: 0004_revocation
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_compromise"
down_revision = "0004_revocation"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "token_reads",
        sa.Column("env", sa.String(length=32), nullable=False),
        sa.Column("secret", sa.String(length=256), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("jti", sa.String(length=128), nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint(
            "env", "secret", "version", "service", "jti", name=op.f("pk_token_reads")
        ),
    )
    op.create_index(op.f("ix_token_reads_expires_at"), "token_reads", ["expires_at"])
    op.create_table(
        "compromises",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("env", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=256), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.String(length=256), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("since", TIME, nullable=True),
        sa.Column("announced_at", TIME, nullable=True),
        sa.Column("finished_at", TIME, nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compromises")),
    )
    op.create_index(
        op.f("ix_compromises_env_announced_at"), "compromises", ["env", "announced_at"]
    )
    op.create_index(
        op.f("ix_compromises_env_created_at"), "compromises", ["env", "created_at"]
    )
    op.create_table(
        "compromise_reads",
        sa.Column("compromise_id", sa.String(length=36), nullable=False),
        sa.Column("secret", sa.String(length=256), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("first_read_at", TIME, nullable=False),
        sa.Column("last_read_at", TIME, nullable=False),
        sa.Column("reads", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "compromise_id", "secret", "version", "service",
            name=op.f("pk_compromise_reads"),
        ),
    )  # fmt: skip
    op.create_table(
        "compromise_tokens",
        sa.Column("compromise_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("revoked_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint(
            "compromise_id", "kind", "subject", name=op.f("pk_compromise_tokens")
        ),
    )
    # A service compromise reads what one service read: without this index,
    # every version of every secret of the environment.
    op.create_index(
        op.f("ix_rotation_consumers_env_service"),
        "rotation_consumers",
        ["env", "service"],
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_rotation_consumers_env_service"), table_name="rotation_consumers"
    )
    op.drop_table("compromise_tokens")
    op.drop_table("compromise_reads")
    op.drop_index(op.f("ix_compromises_env_created_at"), table_name="compromises")
    op.drop_index(op.f("ix_compromises_env_announced_at"), table_name="compromises")
    op.drop_table("compromises")
    op.drop_index(op.f("ix_token_reads_expires_at"), table_name="token_reads")
    op.drop_table("token_reads")
