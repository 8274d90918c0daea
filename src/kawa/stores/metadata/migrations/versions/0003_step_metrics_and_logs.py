"""Each pipeline step's own metrics, artifacts and log path; runs listed by experiment.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("run_steps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("metrics", sa.Text(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("artifacts", sa.Text(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("log", sa.Text(), nullable=True))
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_runs_project_experiment_created_at", ["project", "experiment", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_project_experiment_created_at")
    with op.batch_alter_table("run_steps", schema=None) as batch_op:
        batch_op.drop_column("log")
        batch_op.drop_column("artifacts")
        batch_op.drop_column("metrics")
