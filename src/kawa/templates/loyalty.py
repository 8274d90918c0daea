"""The loyal-customer score: will a user buy in the next 14 days? High scores get coupon A, the rest B.

Steps: label rows at weekly cutoffs (bought within 14 days after the cutoff) with RFM and engagement
features known before each cutoff -> train a LightGBM bundle on the earlier cutoffs, evaluate on the
last one next to a recency-only baseline (and the demo shop's hidden loyalty, when its ground truth is
in the warehouse) -> register and promote it -> score every user as of the newest event, write the
`loyalty_predictions` table and publish each score to the prediction store.

Use it in a project's pipelines.py: `from kawa.templates.loyalty import loyalty`; run it with
`kawa pipeline run loyalty` (override e.g. `-p coupon_threshold=0.6`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kawa.features import USER, Label, series, training_set
from kawa.features.presets import RFM
from kawa.models import Bundle, Registry
from kawa.models.metrics import classification_metrics
from kawa.pipelines import Pipeline, RunContext, step
from kawa.serving.batch import batch_predict
from kawa.serving.store import PredictionStore
from kawa.templates.catalog import Template
from kawa.warehouse.load import write_table

MODEL = "loyalty"
BOUGHT = Label.event_within("bought_14d", USER, where="event_name = 'purchase'", horizon="14d", active="60d")


def _last_event(ctx: RunContext, where: str = "TRUE") -> datetime:
    query = f"SELECT max(sync_date) AS t FROM events WHERE {where}"
    last = ctx.warehouse.query(query).column("t")[0].as_py()
    if last is None:
        raise ValueError(f"no events match {where} yet; send events first (kawa demo does)")
    return last.astimezone(UTC)


@step
def labelled(ctx: RunContext, horizon_days: int, weeks: int) -> pa.Table:
    """Label rows at `weeks` weekly cutoffs, the last one `horizon_days` before the newest purchase.

    The newest purchase, not the newest event: the label is a purchase, and a few fresh views (or
    kawa's own pipeline_run_finished events) after the shop's last sale must not leave it without one.
    """
    last = _last_event(ctx, "event_name = 'purchase'").replace(hour=0, minute=0, second=0, microsecond=0)
    final = last - timedelta(days=horizon_days)
    cutoffs = series(final - timedelta(weeks=weeks - 1), final, every="7d")
    table = training_set(ctx.warehouse, BOUGHT.rows(ctx.warehouse, cutoffs), [RFM])
    if table.num_rows == 0:
        raise ValueError(
            f"no user was active in the 60 days before the {weeks} weekly cutoffs up to {final:%Y-%m-%d} "
            f"(set by the newest purchase, {last:%Y-%m-%d}): a purchase far from the other events moves "
            "the cutoffs; check the purchase events' times, or change horizon_days / weeks"
        )
    positives = int(pc.sum(table.column("label")).as_py() or 0)
    if positives == 0 or positives == table.num_rows:
        raise ValueError(
            f"the {table.num_rows} label rows at the {weeks} weekly cutoffs up to {final:%Y-%m-%d} are "
            f"all {'negative' if positives == 0 else 'positive'}: a model cannot learn from one class; "
            "check the events of those weeks, or change horizon_days / weeks"
        )
    ctx.log_metric("label_rows", table.num_rows)
    ctx.log_metric("positive_rate", float(pc.mean(table.column("label")).as_py()))
    return table


@step(memory="2GB")
def trained(ctx: RunContext, labelled: pa.Table, num_leaves: int, learning_rate: float) -> dict[str, Any]:
    """A LightGBM bundle fitted on every cutoff but the last; evaluated on the last (time-split holdout)."""
    from lightgbm import LGBMClassifier

    last_cutoff = pc.max(labelled.column("cutoff"))
    is_holdout = pc.equal(labelled.column("cutoff"), last_cutoff)
    train, holdout = labelled.filter(pc.invert(is_holdout)), labelled.filter(is_holdout)
    features = [c for c in labelled.column_names if c not in ("user_id", "cutoff", "label")]
    estimator = LGBMClassifier(
        n_estimators=200, num_leaves=num_leaves, learning_rate=learning_rate, min_child_samples=20, verbose=-1
    )
    bundle = Bundle.fit(train.select([*features, "label"]), label="label", estimator=estimator)
    metrics = bundle.evaluate(holdout.select([*features, "label"]))
    y = holdout.column("label").to_numpy()
    recency = holdout.column("days_since_last_seen").to_numpy(zero_copy_only=False).astype(float)
    recency = np.where(np.isnan(recency), 1e6, recency)
    baseline = classification_metrics(y, 1.0 / (1.0 + recency))
    metrics["baseline_recency_auc"] = baseline["auc"]
    truth = _ground_truth_auc(ctx, holdout)
    if truth is not None:
        metrics["ground_truth_loyalty_auc"] = truth
    for name in ("auc", "log_loss", "baseline_recency_auc", "ground_truth_loyalty_auc"):
        if isinstance(metrics.get(name), float):
            ctx.log_metric(name, metrics[name])
    return {
        "bundle": bundle,
        "metrics": metrics,
        "train_rows": train.num_rows,
        "holdout_rows": holdout.num_rows,
        "holdout_cutoff": last_cutoff.as_py().isoformat(),
    }


def _ground_truth_auc(ctx: RunContext, holdout: pa.Table) -> float | None:
    """How well the demo shop's hidden loyalty score ranks the holdout: the ceiling to compare with."""
    if "demo_users" not in ctx.warehouse.tables():
        return None
    truth = ctx.warehouse.query("SELECT user_id, loyalty_score FROM demo_users")
    score = dict(
        zip(truth.column("user_id").to_pylist(), truth.column("loyalty_score").to_pylist(), strict=True)
    )
    users = holdout.column("user_id").to_pylist()
    values = np.array([score.get(u, 0.0) or 0.0 for u in users], dtype=float)
    return float(classification_metrics(holdout.column("label").to_numpy(), values)["auc"])


@step
def registered(ctx: RunContext, trained: dict[str, Any], promote_to: str) -> dict[str, Any]:
    """Register the bundle with its metrics and training data, and point `promote_to` at it."""
    registry = Registry.from_runtime(ctx.runtime)
    version = registry.register(
        ctx.project,
        MODEL,
        trained["bundle"],
        metrics=trained["metrics"],
        params={**ctx.params, "train_rows": trained["train_rows"], "holdout_rows": trained["holdout_rows"]},
        run_id=ctx.run_id,
        training={
            "label": BOUGHT.description,
            "features": RFM.name,
            "holdout_cutoff": trained["holdout_cutoff"],
        },
    )
    if promote_to:
        registry.promote(ctx.project, MODEL, version, promote_to)
    ctx.outputs["model"] = {"name": MODEL, "version": version}
    return {"version": version}


@step
def scored(ctx: RunContext, registered: dict[str, Any], coupon_threshold: float) -> dict[str, Any]:
    """Score every user as of the newest event; write loyalty_predictions and publish to the store."""
    as_of = _last_event(ctx) + timedelta(microseconds=1)
    users = ctx.warehouse.query(
        "SELECT DISTINCT keys.user_id AS user_id FROM events WHERE keys.user_id IS NOT NULL ORDER BY 1"
    )
    rows = users.append_column("cutoff", pa.array([as_of] * users.num_rows, pa.timestamp("us", tz="UTC")))
    features = training_set(ctx.warehouse, rows, [RFM])
    write_table(ctx.warehouse, "loyalty_features", features)
    result = batch_predict(
        ctx.warehouse,
        Registry.from_runtime(ctx.runtime),
        MODEL,
        "SELECT * FROM loyalty_features",
        entity="user_id",
        output="loyalty_predictions",
        run_date=as_of.date(),
        version=registered["version"],
        store=PredictionStore(ctx.online),
    )
    coupon_a = (
        ctx.warehouse.query(
            f"SELECT count(*) AS n FROM loyalty_predictions WHERE run_date = '{result.run_date}' "
            f"AND score >= {float(coupon_threshold)}"
        )
        .column("n")[0]
        .as_py()
    )
    ctx.log_metric("scored_users", result.rows)
    ctx.log_metric("coupon_a_users", coupon_a)
    ctx.outputs["tables"] = ["loyalty_features", "loyalty_predictions"]
    return {"rows": result.rows, "run_date": result.run_date, "coupon_a": coupon_a, "version": result.version}


loyalty = Pipeline(
    "loyalty",
    steps=[labelled, trained, registered, scored],
    params={
        "horizon_days": 14,
        "weeks": 4,
        "num_leaves": 15,
        "learning_rate": 0.05,
        "promote_to": "production",
        "coupon_threshold": 0.5,
    },
    description="Loyal-customer score: purchase within 14 days; coupon A for high scores, B for the rest",
)

TEMPLATE = Template(
    name="loyalty",
    summary="will a user buy in the next 14 days? a LightGBM score per user that picks coupon A or B",
    pipelines=("loyalty",),
    extras=("BOUGHT",),
)
