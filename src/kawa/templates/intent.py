"""Purchase intent: will this session buy, given the pages it has been on so far? Scored on every view.

The input is the session's last 10 page types (`home`, `category`, `item`, `reviews`, `search`, `cart`,
`checkout`, ...) as the streaming feature `pages` of the `session_pages` view: the same definition gives
the training value (`stream_features_at`, point-in-time over the lake) and the serving value (the
trigger worker's StreamEngine), so there is no train/serve skew. It takes the `page_type` of every
event of the session that carries one, views and also cart adds (page `item`), cart removals (`cart`),
searches and logins, because the ORDER of those pages is what separates buying visits (item ->
reviews -> the same item -> cart add -> cart -> checkout) from browsing ones (menus and searches, a
cart looked at first and left).

Steps: one label row per `view` of a human session (bots left out when the demo's ground truth is in
the warehouse; sampled by session beyond `max_rows`), label = the session purchases after this view,
features as of the view -> a SequenceCNN (embeddings -> 1-D convolution -> max pool -> dense head) and
a bag-of-pages baseline (logistic regression on the counts of the same 10 pages), both trained on the
earlier sessions -> evaluated on the sessions of the last `holdout_days` days (`auc`, `baseline_auc`)
-> registered, and promoted to `promote_to` only when it beats the baseline.

The `intent_on_view` trigger scores every `view` with the promoted model in real time; `kawa demo
--realtime` shows it. Use it in a project: `from kawa.templates.intent import intent, intent_on_view,
session_pages` in pipelines.py, then `kawa pipeline run intent` (e.g. `-p epochs=12`).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from kawa.models import Bundle, Registry, SequenceCNN
from kawa.pipelines import Pipeline, RunContext, step
from kawa.streaming import Match, StreamView, stream, stream_features_at
from kawa.templates.catalog import Template
from kawa.triggers import Trigger
from kawa.warehouse import Warehouse

MODEL = "purchase_intent"
PAGES = 10  # the last N page types the model reads
LABEL = "purchases_later"  # the session has a purchase after the scored event
ON = {"event_name": "view"}  # the events that are scored, and the training points
HUMAN_INTENTS = ("buy", "browse")  # demo_sessions.intent of real shoppers (the rest are bots)

session_pages = StreamView(
    "session_pages",
    key="keys.session_id",
    features={"pages": stream.last_n("page_type", PAGES)},
    description="The page types of the session's last events that carry one, oldest first",
)

intent_on_view = Trigger(
    "intent_on_view",
    on=ON,
    key="keys.session_id",
    model=MODEL,
    alias="production",
    features=[session_pages],
    description="Purchase intent of the session after each page view",
)


def _newest_event(warehouse: Warehouse) -> datetime:
    last = warehouse.query("SELECT max(sync_date) AS t FROM events").column("t")[0].as_py()
    if last is None:
        raise ValueError("the events table is empty; send events first (kawa demo does)")
    return last.astimezone(UTC)


def label_points(warehouse: Warehouse, days: int) -> pa.Table:
    """(session_id, ts, event_id, purchases_later) of every scored event of the last `days` days, in
    time order; `purchases_later` says whether the session has a purchase after the event. Events of
    the final hour are left out: their sessions may still buy after the newest event.
    """
    newest = _newest_event(warehouse)
    since, until = newest - timedelta(days=days), newest - timedelta(hours=1)
    human = ""
    if "demo_sessions" in warehouse.tables():
        intents = ", ".join(f"'{i}'" for i in HUMAN_INTENTS)
        human = f"AND e.keys.session_id IN (SELECT session_id FROM demo_sessions WHERE intent IN ({intents}))"
    return warehouse.query(
        f"""
        WITH bought AS (
            SELECT keys.session_id AS session_id, max(sync_date) AS last_purchase
            FROM events WHERE event_name = 'purchase' AND keys.session_id IS NOT NULL GROUP BY 1
        ), e AS (SELECT * FROM events WHERE {Match.from_spec(ON).sql()})
        SELECT e.keys.session_id AS session_id, e.sync_date AS ts, e.event_id,
               coalesce(b.last_purchase > e.sync_date, false) AS {LABEL}
        FROM e LEFT JOIN bought b ON b.session_id = e.keys.session_id
        WHERE e.keys.session_id IS NOT NULL {human}
          AND e.sync_date >= '{since.isoformat()}' AND e.sync_date <= '{until.isoformat()}'
        ORDER BY ts, e.event_id
        """
    )


def _session_share(session_id: str) -> float:
    """A stable number in [0, 1) per session, for sampling whole sessions the same way every run."""
    return int.from_bytes(hashlib.blake2b(session_id.encode(), digest_size=8).digest(), "big") / 2**64


@step
def labelled(ctx: RunContext, days: int, max_rows: int, holdout_days: int) -> pa.Table:
    """Label rows with the session's pages as of each view, and whether the session is in the holdout."""
    points = label_points(ctx.warehouse, days)
    if points.num_rows == 0:
        raise ValueError(f"no {ON} events in the last {days} days to learn from; send events or raise days")
    if points.num_rows > max_rows:
        rate = max_rows / points.num_rows
        sessions = points.column("session_id").to_pylist()
        points = points.filter(pa.array([_session_share(s) < rate for s in sessions]))
    starts = points.group_by("session_id").aggregate([("ts", "min")])
    split = pc.max(points.column("ts")).as_py() - timedelta(days=holdout_days)
    late = starts.filter(
        pc.greater_equal(starts.column("ts_min"), pa.scalar(split, points.column("ts").type))
    )
    holdout = pc.is_in(points.column("session_id"), value_set=late.column("session_id").combine_chunks())
    table = stream_features_at(ctx.warehouse, session_pages, points.append_column("holdout", holdout))
    ctx.log_metric("label_rows", table.num_rows)
    ctx.log_metric("sessions", starts.num_rows)
    ctx.log_metric("positive_rate", float(pc.mean(pc.cast(table.column(LABEL), pa.float64())).as_py()))
    return table


def _split(labelled: pa.Table) -> tuple[pa.Table, pa.Table]:
    holdout = labelled.column("holdout")
    columns = ["pages", LABEL]
    return labelled.filter(pc.invert(holdout)).select(columns), labelled.filter(holdout).select(columns)


@step(memory="2GB")
def trained(ctx: RunContext, labelled: pa.Table, epochs: int, seed: int) -> dict[str, Any]:
    """The SequenceCNN and the bag-of-pages baseline, both fitted on the earlier sessions."""
    from sklearn.linear_model import LogisticRegression

    train, _ = _split(labelled)
    if train.num_rows == 0 or pc.count_distinct(train.column(LABEL)).as_py() < 2:
        raise ValueError("the training sessions hold a single label; widen days or send more events")
    model = Bundle.fit(
        train, label=LABEL, estimator=SequenceCNN(epochs=epochs, seed=seed), sequence_length=PAGES
    )
    baseline = Bundle.fit(
        train, label=LABEL, estimator=LogisticRegression(max_iter=1000), sequence_length=PAGES
    )
    for epoch, loss in enumerate(model.flavor.params()["epoch_loss"], start=1):
        print(f"epoch {epoch}: training loss {loss:.4f}")
    ctx.log_metric("train_rows", train.num_rows)
    return {"model": model, "baseline": baseline, "train_rows": train.num_rows}


@step
def evaluated(ctx: RunContext, labelled: pa.Table, trained: dict[str, Any]) -> dict[str, Any]:
    """Holdout metrics of the model, with the baseline's AUC beside them."""
    _, holdout = _split(labelled)
    if holdout.num_rows == 0:
        raise ValueError("the holdout is empty; lower holdout_days or raise days")
    metrics = trained["model"].evaluate(holdout)
    baseline = trained["baseline"].evaluate(holdout)
    metrics["baseline_auc"] = baseline["auc"]
    metrics["baseline_log_loss"] = baseline["log_loss"]
    for name in ("auc", "baseline_auc", "log_loss", "baseline_log_loss"):
        if isinstance(metrics.get(name), float):
            ctx.log_metric(name, metrics[name])
    ctx.log_metric("holdout_rows", holdout.num_rows)
    return metrics


@step
def registered(
    ctx: RunContext, trained: dict[str, Any], evaluated: dict[str, Any], promote_to: str
) -> dict[str, Any]:
    """Register the model with its metrics; point `promote_to` at it only if it beats the baseline."""
    registry = Registry.from_runtime(ctx.runtime)
    version = registry.register(
        ctx.project,
        MODEL,
        trained["model"],
        metrics=evaluated,
        params={**ctx.params, "train_rows": trained["train_rows"]},
        run_id=ctx.run_id,
        training={
            "label": f"the session purchases after the event ({Match.from_spec(ON).spec})",
            "features": session_pages.name,
            "baseline": "logistic regression on the counts of the same pages",
        },
    )
    auc, baseline = evaluated.get("auc"), evaluated.get("baseline_auc")
    beats = isinstance(auc, float) and isinstance(baseline, float) and auc > baseline
    if promote_to and beats:
        registry.promote(ctx.project, MODEL, version, promote_to)
    elif promote_to:
        print(f"not promoted: holdout AUC {auc} does not beat the bag-of-pages baseline {baseline}")
    ctx.outputs["model"] = {"name": MODEL, "version": version}
    return {"version": version, "promoted": bool(promote_to and beats)}


intent = Pipeline(
    "intent",
    steps=[labelled, trained, evaluated, registered],
    params={
        "days": 28,
        "max_rows": 100_000,
        "holdout_days": 7,
        "epochs": 8,
        "seed": 0,
        "promote_to": "production",
    },
    description="Purchase intent from the session's page sequence (CNN), served on every view",
)

TEMPLATE = Template(
    name="intent",
    summary="will this session buy? a CNN over the pages viewed so far, scored in real time on every view",
    pipelines=("intent",),
    extras=("session_pages", "intent_on_view"),
    needs="kawa[torch]",
)
