"""Step results (stored outputs and cache keys) and lineage (what each step of a run read and wrote).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "step_results",
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("step", sa.String(length=128), nullable=False),
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("pipeline", sa.String(length=128), nullable=False),
        sa.Column("cache_key", sa.String(length=64), nullable=True),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("cached_from", sa.String(length=40), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], name=op.f("fk_step_results_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "step", name=op.f("pk_step_results")),
    )
    with op.batch_alter_table("step_results", schema=None) as batch_op:
        batch_op.create_index(
            "ix_step_results_project_pipeline_step_cache_key",
            ["project", "pipeline", "step", "cache_key"],
            unique=False,
        )
    op.create_table(
        "lineage",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("pipeline", sa.String(length=128), nullable=False),
        sa.Column("step", sa.String(length=128), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("partition", sa.Text(), nullable=True),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], name=op.f("fk_lineage_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lineage")),
        sa.CheckConstraint("direction IN ('read', 'write')", name=op.f("ck_lineage_direction")),
        sa.CheckConstraint("kind IN ('table', 'model')", name=op.f("ck_lineage_kind")),
    )
    with op.batch_alter_table("lineage", schema=None) as batch_op:
        batch_op.create_index("ix_lineage_project_name", ["project", "name"], unique=False)
        batch_op.create_index("ix_lineage_run_id", ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("lineage", schema=None) as batch_op:
        batch_op.drop_index("ix_lineage_run_id")
        batch_op.drop_index("ix_lineage_project_name")
    op.drop_table("lineage")
    with op.batch_alter_table("step_results", schema=None) as batch_op:
        batch_op.drop_index("ix_step_results_project_pipeline_step_cache_key")
    op.drop_table("step_results")
