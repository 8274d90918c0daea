"""Segments: each member a segment delivered on a day, with its batch, destination and status.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "segment_deliveries",
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("segment", sa.String(length=128), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("member", sa.String(length=255), nullable=False),
        sa.Column("attributes", sa.Text(), nullable=False),
        sa.Column("destination", sa.String(length=512), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')", name=op.f("ck_segment_deliveries_status")
        ),
        sa.PrimaryKeyConstraint("project", "segment", "day", "member", name=op.f("pk_segment_deliveries")),
    )
    with op.batch_alter_table("segment_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_segment_deliveries_project_segment_member", ["project", "segment", "member"], unique=False
        )
        batch_op.create_index("ix_segment_deliveries_project_batch_id", ["project", "batch_id"], unique=False)
        batch_op.create_index(
            "ix_segment_deliveries_project_claimed_at", ["project", "claimed_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("segment_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_segment_deliveries_project_claimed_at")
        batch_op.drop_index("ix_segment_deliveries_project_batch_id")
        batch_op.drop_index("ix_segment_deliveries_project_segment_member")
    op.drop_table("segment_deliveries")
