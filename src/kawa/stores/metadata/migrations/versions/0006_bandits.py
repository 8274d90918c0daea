"""Bandits: each arm's pulls and rewards per bandit and context, and every decision with its reward.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bandit_arms",
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("bandit", sa.String(length=64), nullable=False),
        sa.Column("context", sa.String(length=512), nullable=False),
        sa.Column("arm", sa.String(length=128), nullable=False),
        sa.Column("pulls", sa.BigInteger(), nullable=False),
        sa.Column("rewards", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("project", "bandit", "context", "arm", name=op.f("pk_bandit_arms")),
    )
    op.create_table(
        "bandit_decisions",
        sa.Column("decision_id", sa.String(length=32), nullable=False),
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("bandit", sa.String(length=64), nullable=False),
        sa.Column("context", sa.String(length=512), nullable=False),
        sa.Column("arm", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rewarded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reward_event_id", sa.String(length=255), nullable=True),
        sa.Column("reward_kind", sa.String(length=16), nullable=True),
        sa.CheckConstraint(
            "reward_kind IN ('decision_id', 'purchase')", name=op.f("ck_bandit_decisions_reward_kind")
        ),
        sa.PrimaryKeyConstraint("decision_id", name=op.f("pk_bandit_decisions")),
    )
    with op.batch_alter_table("bandit_decisions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_bandit_decisions_project_bandit_decided_at", ["project", "bandit", "decided_at"], unique=False
        )
        batch_op.create_index(
            "ix_bandit_decisions_project_bandit_user_id",
            ["project", "bandit", "user_id", "decided_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_bandit_decisions_reward_event_id", ["project", "bandit", "reward_event_id"], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table("bandit_decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_bandit_decisions_reward_event_id")
        batch_op.drop_index("ix_bandit_decisions_project_bandit_user_id")
        batch_op.drop_index("ix_bandit_decisions_project_bandit_decided_at")
    op.drop_table("bandit_decisions")
    op.drop_table("bandit_arms")
