"""rotation: schedules, records, steps and consumers

Revision ID: 0002_rotation
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_rotation"
down_revision = "0001"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rotation_secrets",
        sa.Column("env", sa.String(length=32), nullable=False),
        sa.Column("secret", sa.String(length=256), nullable=False),
        sa.Column("spec", sa.String(length=160), nullable=True),
        sa.Column("slot_at", TIME, nullable=True),
        sa.Column("due_at", TIME, nullable=True),
        sa.Column("active_rotation", sa.String(length=36), nullable=True),
        sa.Column("current_version", sa.String(length=128), nullable=True),
        sa.Column("current_since", TIME, nullable=True),
        sa.Column("failures_in_row", sa.Integer(), nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("env", "secret", name=op.f("pk_rotation_secrets")),
    )
    op.create_table(
        "rotations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("env", sa.String(length=32), nullable=False),
        sa.Column("secret", sa.String(length=256), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("no_grace", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("test_attempts", sa.Integer(), nullable=False),
        sa.Column("old_version", sa.String(length=128), nullable=True),
        sa.Column("new_version", sa.String(length=128), nullable=True),
        sa.Column("credential_ref", sa.String(length=256), nullable=True),
        sa.Column("failed_step", sa.String(length=16), nullable=True),
        sa.Column("error", sa.String(length=512), nullable=True),
        sa.Column("diverged", sa.Boolean(), nullable=False),
        sa.Column("retire_policy", sa.String(length=16), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("slot_at", TIME, nullable=True),
        sa.Column("test_started_at", TIME, nullable=True),
        sa.Column("next_attempt_at", TIME, nullable=False),
        sa.Column("finished_at", TIME, nullable=True),
        sa.Column("grace_until", TIME, nullable=True),
        sa.Column("retired_at", TIME, nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rotations")),
    )
    with op.batch_alter_table("rotations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rotations_env_secret"), ["env", "secret"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_rotations_state_next_attempt_at"),
            ["state", "next_attempt_at"],
            unique=False,
        )
    op.create_table(
        "rotation_steps",
        sa.Column("rotation_id", sa.String(length=36), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("finished_at", TIME, nullable=True),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error", sa.String(length=512), nullable=True),
        sa.PrimaryKeyConstraint("rotation_id", "step", name=op.f("pk_rotation_steps")),
    )
    op.create_table(
        "rotation_consumers",
        sa.Column("env", sa.String(length=32), nullable=False),
        sa.Column("secret", sa.String(length=256), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("first_read_at", TIME, nullable=False),
        sa.Column("last_read_at", TIME, nullable=False),
        sa.Column("reads", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "env", "secret", "version", "service", name=op.f("pk_rotation_consumers")
        ),
    )


def downgrade() -> None:
    op.drop_table("rotation_consumers")
    op.drop_table("rotation_steps")
    with op.batch_alter_table("rotations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rotations_state_next_attempt_at"))
        batch_op.drop_index(batch_op.f("ix_rotations_env_secret"))
    op.drop_table("rotations")
    op.drop_table("rotation_secrets")
