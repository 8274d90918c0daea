"""The metadata tables as SQLAlchemy Core objects, for queries; the migrations are what create them.

When a table changes here, add a migration under `migrations/versions/` that makes the same change;
`tests/stores/test_metadata.py` fails while the two disagree.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

# Fixed constraint names, so later migrations can drop or alter them by name on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[datetime]):
    """A point in time, stored as UTC and always read back timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}; pass an aware one, e.g. datetime.now(UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


projects = Table(
    "projects",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("created_at", UtcDateTime(), nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column(
        "project",
        String(64),
        ForeignKey("projects.name", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("role", String(8), nullable=False),
    # sha256 of the secret, hex; the plaintext secret is never stored.
    Column("secret_hash", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=True),
    CheckConstraint("role IN ('write', 'read', 'admin')", name="role"),
)

# -- pipelines: runs and their steps ---------------------------------------------------------------

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(40), primary_key=True),
    Column("project", String(64), ForeignKey("projects.name", ondelete="CASCADE"), nullable=False),
    Column("pipeline", String(128), nullable=False),
    Column("experiment", String(128), nullable=False),
    # manual | scheduled | backfill | test
    Column("kind", String(16), nullable=False),
    # queued | running | succeeded | failed | cancelled | timeout | skipped
    Column("status", String(16), nullable=False),
    Column("logical_date", UtcDateTime(), nullable=True),
    Column("params", Text(), nullable=False),  # JSON object
    Column("metrics", Text(), nullable=False),  # JSON object
    Column("artifacts", Text(), nullable=False),  # JSON list of artifact paths
    Column("message", Text(), nullable=True),  # JSON: the status message sent when the run ended
    Column("error", Text(), nullable=True),  # the failing step's error with its traceback
    Column("created_at", UtcDateTime(), nullable=False),
    Column("started_at", UtcDateTime(), nullable=True),
    Column("finished_at", UtcDateTime(), nullable=True),
    # The process holding the run while queued or running (host:pid:start time), to settle orphans.
    Column("owner", String(128), nullable=True),
    Index("ix_runs_project_pipeline_created_at", "project", "pipeline", "created_at"),
    Index("ix_runs_project_experiment_created_at", "project", "experiment", "created_at"),
    Index("ix_runs_project_pipeline_status", "project", "pipeline", "status"),
)

run_steps = Table(
    "run_steps",
    metadata,
    Column("run_id", String(40), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("step", String(128), primary_key=True),
    Column("position", Integer(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("resources", Text(), nullable=False),  # JSON: cpus, memory, gpu hints
    Column("outputs", Text(), nullable=False),  # JSON: what the step wrote (tables, models, artifacts)
    Column("error", Text(), nullable=True),
    Column("started_at", UtcDateTime(), nullable=True),
    Column("finished_at", UtcDateTime(), nullable=True),
    # Added in 0003: the step's own metrics (JSON object), logged artifact paths (JSON list), and the
    # artifact path of its captured log.
    Column("metrics", Text(), nullable=False, server_default="{}"),
    Column("artifacts", Text(), nullable=False, server_default="[]"),
    Column("log", Text(), nullable=True),
)

# -- models: the registry ----------------------------------------------------------------------------

models = Table(
    "models",
    metadata,
    Column("project", String(64), ForeignKey("projects.name", ondelete="CASCADE"), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("description", Text(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("project", String(64), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("version", Integer(), primary_key=True),
    Column("run_id", String(40), nullable=True),
    Column("flavor", String(64), nullable=False),  # e.g. sklearn, lightgbm
    Column("artifact", Text(), nullable=False),  # path in the artifact store
    Column("signature", Text(), nullable=False),  # JSON: the human-readable inputs and output
    Column("metrics", Text(), nullable=False),  # JSON object
    Column("params", Text(), nullable=False),  # JSON object
    Column("training", Text(), nullable=False),  # JSON: the training data's query and time range
    Column("created_at", UtcDateTime(), nullable=False),
    ForeignKeyConstraint(["project", "name"], ["models.project", "models.name"], ondelete="CASCADE"),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("project", String(64), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("alias", String(64), primary_key=True),  # production, staging, ...
    Column("version", Integer(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    ForeignKeyConstraint(
        ["project", "name", "version"],
        ["model_versions.project", "model_versions.name", "model_versions.version"],
        ondelete="CASCADE",
    ),
)

# The last version number of each deleted model: a name registered again goes on after it, so a version
# number names one bundle for good (caches keyed by it never hand out a deleted model's bundle).
model_tombstones = Table(
    "model_tombstones",
    metadata,
    Column("project", String(64), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("last_version", Integer(), nullable=False),
    Column("deleted_at", UtcDateTime(), nullable=False),
)

# -- schedules: what the scheduler saw, which runs it claimed or skipped -----------------------------

schedules = Table(
    "schedules",
    metadata,
    Column("project", String(64), ForeignKey("projects.name", ondelete="CASCADE"), primary_key=True),
    Column("pipeline", String(128), primary_key=True),
    Column("spec", Text(), nullable=False),  # JSON: the schedule as declared (start, every/cron, zone, ...)
    Column("fingerprint", String(64), nullable=False),  # sha256 of spec: a change is a new deployment
    # active | refused (first run in the past when deployed) | removed (no longer declared)
    Column("status", String(16), nullable=False),
    Column("error", Text(), nullable=True),  # why a schedule was refused
    Column("first_run", UtcDateTime(), nullable=True),
    # The next logical date the scheduler has neither claimed nor skipped.
    Column("cursor", UtcDateTime(), nullable=True),
    Column("deployed_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    CheckConstraint("status IN ('active', 'refused', 'removed')", name="status"),
)

# One row per (pipeline, logical date) the scheduler or a backfill has taken: the primary key is the
# claim that keeps a date from running twice, also across restarts and competing schedulers.
scheduled_runs = Table(
    "scheduled_runs",
    metadata,
    Column("project", String(64), ForeignKey("projects.name", ondelete="CASCADE"), primary_key=True),
    Column("pipeline", String(128), primary_key=True),
    Column("logical_date", UtcDateTime(), primary_key=True),
    Column("kind", String(16), nullable=False),  # scheduled | backfill
    # queued (claimed, waiting for its turn or its wait_for) | running | done | skipped
    Column("state", String(16), nullable=False),
    Column("run_id", String(40), nullable=True),  # the runs row, once there is one
    Column("owner", String(128), nullable=True),  # the scheduler that claimed it (host:pid:random)
    Column("reason", Text(), nullable=True),  # why it was skipped, or why it failed before running
    Column("claimed_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_scheduled_runs_project_state", "project", "state"),
    Index("ix_scheduled_runs_run_id", "run_id"),
    CheckConstraint("state IN ('queued', 'running', 'done', 'skipped')", name="state"),
)

# Which scheduler of a project schedules (one at a time), and when it last said it was alive.
scheduler_leases = Table(
    "scheduler_leases",
    metadata,
    Column("project", String(64), ForeignKey("projects.name", ondelete="CASCADE"), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("heartbeat_at", UtcDateTime(), nullable=False),
)

# -- pipelines: step results (for caching) and lineage -----------------------------------------------

# What a finished step returned, stored in the artifact store, and the cache key it was computed under:
# a later run of the same step with the same key reuses `output` instead of running the step again.
step_results = Table(
    "step_results",
    metadata,
    Column("run_id", String(40), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("step", String(128), primary_key=True),
    Column("project", String(64), nullable=False),
    Column("pipeline", String(128), nullable=False),
    Column("cache_key", String(64), nullable=True),  # sha256 of code, parameters and input versions
    Column("output", Text(), nullable=True),  # JSON: {"path", "kind", "digest"} of the stored value
    Column("cached_from", String(40), nullable=True),  # the run whose result this step reused
    Column("attempts", Integer(), nullable=False, server_default="1"),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_step_results_project_pipeline_step_cache_key", "project", "pipeline", "step", "cache_key"),
)

# What each step of a run read and wrote: warehouse tables (and partitions) and models.
lineage = Table(
    "lineage",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("project", String(64), nullable=False),
    Column("run_id", String(40), ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("pipeline", String(128), nullable=False),
    Column("step", String(128), nullable=False),
    Column("direction", String(8), nullable=False),  # read | write
    Column("kind", String(8), nullable=False),  # table | model
    Column("name", String(128), nullable=False),
    Column("partition", Text(), nullable=True),  # JSON object {column: value}; null for the whole table
    Column("version", String(64), nullable=True),  # the table's manifest version, or the model version
    Column("recorded_at", UtcDateTime(), nullable=False),
    Index("ix_lineage_project_name", "project", "name"),
    Index("ix_lineage_run_id", "run_id"),
    CheckConstraint("direction IN ('read', 'write')", name="direction"),
    CheckConstraint("kind IN ('table', 'model')", name="kind"),
)

# -- decisions: bandits -------------------------------------------------------------------------------

# Each arm's counts per bandit and context ("" without one): pulls grow when a decision is recorded,
# rewards when the reward worker attributes an event to a decision.
bandit_arms = Table(
    "bandit_arms",
    metadata,
    Column("project", String(64), primary_key=True),
    Column("bandit", String(64), primary_key=True),
    Column("context", String(512), primary_key=True),
    Column("arm", String(128), primary_key=True),
    Column("pulls", BigInteger(), nullable=False),
    Column("rewards", BigInteger(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# One row per choice a bandit made; rewarded once at most (the unique index keeps one event from
# rewarding two decisions of a bandit).
bandit_decisions = Table(
    "bandit_decisions",
    metadata,
    Column("decision_id", String(32), primary_key=True),
    Column("project", String(64), nullable=False),
    Column("bandit", String(64), nullable=False),
    Column("context", String(512), nullable=False),
    Column("arm", String(128), nullable=False),
    Column("user_id", String(255), nullable=True),
    Column("decided_at", UtcDateTime(), nullable=False),
    Column("rewarded_at", UtcDateTime(), nullable=True),  # the rewarding event's time
    Column("reward_event_id", String(255), nullable=True),
    Column("reward_kind", String(16), nullable=True),  # decision_id | purchase
    Index("ix_bandit_decisions_project_bandit_decided_at", "project", "bandit", "decided_at"),
    Index("ix_bandit_decisions_project_bandit_user_id", "project", "bandit", "user_id", "decided_at"),
    Index("ix_bandit_decisions_reward_event_id", "project", "bandit", "reward_event_id", unique=True),
    CheckConstraint("reward_kind IN ('decision_id', 'purchase')", name="reward_kind"),
)

# -- decisions: segments ------------------------------------------------------------------------------

# Each member a segment delivered (or is delivering) on a day: the primary key is the claim that keeps a
# member from being sent twice for one segment and day, also across reruns and crashes. A batch's rows
# share a batch_id, sent as the Idempotency-Key of its webhook POST.
segment_deliveries = Table(
    "segment_deliveries",
    metadata,
    Column("project", String(64), primary_key=True),
    Column("segment", String(128), primary_key=True),
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD in the segment's time zone
    Column("member", String(255), primary_key=True),  # the entity value, as text
    Column("attributes", Text(), nullable=False),  # JSON object: the SQL's other columns
    Column("destination", String(512), nullable=False),  # e.g. "webhook https://host", "csv exports"
    Column("batch_id", String(32), nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("run_id", String(40), nullable=True),  # the run that claimed (or retook) the row
    Column("attempts", Integer(), nullable=False),
    Column("error", Text(), nullable=True),
    Column("claimed_at", UtcDateTime(), nullable=False),
    Column("delivered_at", UtcDateTime(), nullable=True),
    Index("ix_segment_deliveries_project_segment_member", "project", "segment", "member"),
    Index("ix_segment_deliveries_project_batch_id", "project", "batch_id"),
    Index("ix_segment_deliveries_project_claimed_at", "project", "claimed_at"),
    CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status"),
)
