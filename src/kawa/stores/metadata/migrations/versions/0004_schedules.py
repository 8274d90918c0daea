"""Schedules: each pipeline schedule as the scheduler last saw it, the scheduler's lease, and claimed runs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("pipeline", sa.String(length=128), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("first_run", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cursor", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deployed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project"], ["projects.name"], name=op.f("fk_schedules_project_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("project", "pipeline", name=op.f("pk_schedules")),
        sa.CheckConstraint("status IN ('active', 'refused', 'removed')", name=op.f("ck_schedules_status")),
    )
    op.create_table(
        "scheduled_runs",
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("pipeline", sa.String(length=128), nullable=False),
        sa.Column("logical_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=True),
        sa.Column("owner", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project"],
            ["projects.name"],
            name=op.f("fk_scheduled_runs_project_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project", "pipeline", "logical_date", name=op.f("pk_scheduled_runs")),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'done', 'skipped')", name=op.f("ck_scheduled_runs_state")
        ),
    )
    with op.batch_alter_table("scheduled_runs", schema=None) as batch_op:
        batch_op.create_index("ix_scheduled_runs_project_state", ["project", "state"], unique=False)
        batch_op.create_index("ix_scheduled_runs_run_id", ["run_id"], unique=False)
    op.create_table(
        "scheduler_leases",
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project"],
            ["projects.name"],
            name=op.f("fk_scheduler_leases_project_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project", name=op.f("pk_scheduler_leases")),
    )


def downgrade() -> None:
    op.drop_table("scheduler_leases")
    with op.batch_alter_table("scheduled_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_scheduled_runs_run_id")
        batch_op.drop_index("ix_scheduled_runs_project_state")
    op.drop_table("scheduled_runs")
    op.drop_table("schedules")
