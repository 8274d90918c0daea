"""Anomaly and cheater detection: members (users, and visitors who never log in) who act like no shopper.

Steps: behaviour features per member in SQL over the last `window_days` of events (`FEATURES_SQL`: event
rate, how regular the gaps between a session's events are, the share of night events, session shape:
events and distinct items per session, cart and purchase ratios, visitor ids per session, user agents;
a visitor's events before it logged in count for its user) -> an IsolationForest (scikit-learn) bundle
fitted on every member without any label; its score is the forest's anomaly score, higher for stranger
members. Where known cheaters are in the warehouse (`truth_sql`; the demo shop's injected bots by
default), precision and recall at the top 1% and at the top k = the number of cheaters are logged next
to the same figures for ranking by event rate alone -> register and promote the bundle -> score every
member into `anomaly_scores` and the prediction store (model `anomaly`), and write the top `flag_share`
of members to `anomaly_flagged`.

The `anomaly_exclusions` segment delivers the flagged members as a CSV file per day
(`exports/segments/anomaly_exclusions-<day>.csv`), e.g. for an exclusion list in ad targeting:
`kawa segments run anomaly_exclusions` after the pipeline.

The demo shop's bots are loud: scores of events a visit give them away, so event rate alone finds them
as well as the forest does. `quiet_bots` cuts each bot visit to a shopper's length; on those events rate
alone finds none and the forest still finds nearly all, by their clockwork pace and cookie-less visits.

Use it in a project's pipelines.py: `from kawa.templates.anomaly import anomaly, anomaly_exclusions`;
run it with `kawa pipeline run anomaly` (override e.g. `-p flag_share=0.005 -p timezone=Europe/Berlin`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kawa.models import Bundle
from kawa.pipelines import Pipeline, RunContext, step
from kawa.segments import Export, Segment
from kawa.serving.batch import batch_predict
from kawa.serving.store import PredictionStore
from kawa.templates._zone import time_zone
from kawa.templates.catalog import Template
from kawa.warehouse.engine import SQLError

MODEL = "anomaly"
LABEL = "anomaly_score"  # what the bundle predicts; the forest is fitted without looking at its values
ENTITY = "member_id"
BASELINE = "log_events_per_day"  # event rate alone: events per active day
GAP_MIN = 5  # gaps a member needs before their regularity counts

# One row per member: a user id, or the visitor id of a visitor that never logged in. $1 is the window's
# start, $2 the time zone whose nights count. Counts and times are logged: the forest splits a feature
# evenly between its extremes, so a long tail (a few heavy shoppers) would otherwise crowd out the rest.
# A member with too few gaps to measure gets the median member's gap figures: left missing, the bundle
# would add a missing-value flag, an easy split that sets apart every short visit instead of the bots.
FEATURES_SQL = f"""
WITH stitched AS (
    SELECT keys.visitor_id AS visitor_id, any_value(keys.user_id) AS user_id
    FROM events WHERE keys.user_id IS NOT NULL AND keys.visitor_id IS NOT NULL GROUP BY 1
),
e AS (
    SELECT coalesce(ev.keys.user_id, s.user_id, ev.keys.visitor_id) AS member_id,
        coalesce(ev.keys.user_id, s.user_id) IS NULL AS anonymous,
        ev.keys.visitor_id AS visitor_id, ev.keys.session_id AS session_id, ev.event_name, ev.sync_date,
        ev.item_id, json_extract_string(ev.properties, '$.user_agent') AS user_agent
    FROM events ev LEFT JOIN stitched s ON s.visitor_id = ev.keys.visitor_id
    WHERE ev.event_name <> 'pipeline_run_finished' AND ev.sync_date > $1
        AND coalesce(ev.keys.user_id, ev.keys.visitor_id) IS NOT NULL
),
gaps AS (
    SELECT member_id, epoch(sync_date)
        - epoch(lag(sync_date) OVER (PARTITION BY member_id, session_id ORDER BY sync_date)) AS gap
    FROM e
),
gap_stats AS (
    SELECT member_id, ln(greatest(median(gap), 0.001)) AS log_gap_median_s,
        CASE WHEN count(*) >= {GAP_MIN}
            THEN ln(greatest(stddev_pop(gap) / nullif(avg(gap), 0), 0.001)) END AS log_gap_cv
    FROM gaps WHERE gap IS NOT NULL GROUP BY 1
),
sessions AS (
    SELECT member_id, ln(avg(events)) AS log_events_per_session, ln(1 + avg(items)) AS log_items_per_session
    FROM (SELECT member_id, session_id, count(*) AS events, count(DISTINCT item_id) AS items
          FROM e GROUP BY 1, 2)
    GROUP BY 1
)
SELECT e.member_id,
    CASE WHEN bool_and(e.anonymous) THEN 'visitor' ELSE 'user' END AS member_kind,
    ln(count(*)) AS log_events,
    ln(count(*) / count(DISTINCT CAST(timezone($2, e.sync_date) AS DATE))) AS log_events_per_day,
    count(DISTINCT CAST(timezone($2, e.sync_date) AS DATE)) AS active_days,
    ln(count(DISTINCT e.session_id)) AS log_sessions,
    count(DISTINCT e.visitor_id) / count(DISTINCT e.session_id) AS visitors_per_session,
    avg(CAST(hour(timezone($2, e.sync_date)) < 6 AS INTEGER)) AS night_share,
    count(*) FILTER (e.event_name = 'cart_add')
        / greatest(count(*) FILTER (e.event_name = 'view'), 1) AS carts_per_view,
    count(*) FILTER (e.event_name = 'cart_remove')
        / greatest(count(*) FILTER (e.event_name = 'cart_add'), 1) AS removes_per_cart,
    count(*) FILTER (e.event_name = 'purchase')
        / greatest(count(*) FILTER (e.event_name = 'cart_add'), 1) AS purchases_per_cart,
    count(DISTINCT e.user_agent) AS user_agents,
    coalesce(any_value(g.log_gap_median_s), median(any_value(g.log_gap_median_s)) OVER ())
        AS log_gap_median_s,
    coalesce(any_value(g.log_gap_cv), median(any_value(g.log_gap_cv)) OVER ()) AS log_gap_cv,
    any_value(s.log_events_per_session) AS log_events_per_session,
    any_value(s.log_items_per_session) AS log_items_per_session
FROM e LEFT JOIN gap_stats g USING (member_id) LEFT JOIN sessions s USING (member_id)
GROUP BY e.member_id
ORDER BY e.member_id
"""
FEATURES = (
    "log_events",
    "log_events_per_day",
    "active_days",
    "log_sessions",
    "visitors_per_session",
    "night_share",
    "carts_per_view",
    "removes_per_cart",
    "purchases_per_cart",
    "user_agents",
    "log_gap_median_s",
    "log_gap_cv",
    "log_events_per_session",
    "log_items_per_session",
)
# Known cheaters for the evaluation: one column of member ids (the demo shop's bots by default).
DEMO_TRUTH = "SELECT user_id FROM demo_users WHERE is_bot"


@step
def features(ctx: RunContext, window_days: int, timezone: str, flag_share: float) -> pa.Table:
    """Behaviour features of every member active in the last `window_days` days; kept as anomaly_features."""
    if window_days < 1:
        raise ValueError(f"window_days={window_days}: look back at least 1 day of events")
    if not 0 < flag_share < 1:
        raise ValueError(f"flag_share={flag_share}: flag a share of members between 0 and 1, e.g. 0.01")
    time_zone(timezone)
    newest = _newest(ctx)
    start = newest - timedelta(days=window_days)
    table = ctx.warehouse.query(FEATURES_SQL, [start, timezone])
    if table.num_rows < 20:
        raise ValueError(
            f"{table.num_rows} members were active in the {window_days} days up to {newest:%Y-%m-%d %H:%M}: "
            "too few to tell strange behaviour from usual; use a longer window_days or load more events"
        )
    ctx.write_table("anomaly_features", table)
    ctx.log_metric("members", table.num_rows)
    visitors = pc.sum(pc.equal(table.column("member_kind"), "visitor")).as_py() or 0
    ctx.log_metric("anonymous_visitors", visitors)
    return table


def _newest(ctx: RunContext) -> datetime:
    """The time of the newest event (kawa's own run notifications aside)."""
    query = "SELECT max(sync_date) AS t FROM events WHERE event_name <> 'pipeline_run_finished'"
    newest = ctx.warehouse.query(query).column("t")[0].as_py()
    if newest is None:
        raise ValueError("no events yet: send events first (kawa demo does)")
    return newest.astimezone(UTC)


def top_hits(scores: np.ndarray, truth: np.ndarray, k: int) -> tuple[float, float]:
    """Precision and recall of the `k` highest scores against `truth` (True for a known cheater).

    >>> top_hits(np.array([0.9, 0.1, 0.8, 0.3]), np.array([True, False, False, True]), 2)
    (0.5, 0.5)
    """
    top = np.argsort(-scores, kind="stable")[:k]
    hits = int(truth[top].sum())
    return hits / k, hits / max(int(truth.sum()), 1)


def evaluation(
    members: list[str], scores: np.ndarray, rate: np.ndarray, cheaters: set[str]
) -> dict[str, float]:
    """Precision and recall at the top 1% and at the top k = the number of cheaters among `members`,
    for the forest's `scores` and (prefixed `baseline_`) for event `rate` alone."""
    truth = np.array([m in cheaters for m in members], dtype=bool)
    top_1pct = max(1, round(0.01 * len(members)))
    k = int(truth.sum())
    out: dict[str, float] = {"cheaters": k, "top_1pct": top_1pct}
    if k == 0:
        return out
    for prefix, ranked in (("", scores), ("baseline_", np.nan_to_num(rate, nan=-np.inf))):
        out[f"{prefix}precision_top_1pct"], out[f"{prefix}recall_top_1pct"] = top_hits(
            ranked, truth, top_1pct
        )
        out[f"{prefix}recall_top_k"] = top_hits(ranked, truth, k)[1]  # = its precision, as k = cheaters
    return out


def _known_cheaters(ctx: RunContext, truth_sql: str) -> set[str] | None:
    if not truth_sql.strip():
        return None
    if truth_sql == DEMO_TRUTH and "demo_users" not in ctx.warehouse.tables():
        print("no demo_users table (the demo shop's ground truth): no evaluation against known cheaters")
        return None
    try:
        found = ctx.warehouse.query(truth_sql)
    except SQLError as exc:
        raise ValueError(
            f"truth_sql failed: {exc}; it must return one column of member ids, or pass -p truth_sql= "
            "to skip the evaluation"
        ) from None
    return {str(v) for v in found.column(0).to_pylist() if v is not None}


@step(memory="2GB")
def trained(ctx: RunContext, features: pa.Table, trees: int, seed: int, truth_sql: str) -> dict[str, Any]:
    """An IsolationForest bundle fitted on every member; evaluated against known cheaters where there are."""
    from sklearn.ensemble import IsolationForest

    data = features.select(list(FEATURES)).append_column(LABEL, pa.array(np.zeros(features.num_rows)))
    forest = IsolationForest(n_estimators=trees, random_state=seed)
    bundle = Bundle.fit(data, label=LABEL, estimator=forest, features=list(FEATURES))
    metrics: dict[str, float] = {}
    cheaters = _known_cheaters(ctx, truth_sql)
    if cheaters is not None:
        members = features.column(ENTITY).to_pylist()
        rate = features.column(BASELINE).to_numpy(zero_copy_only=False).astype(float)
        metrics = evaluation(members, bundle.predict_table(data), rate, cheaters)
        for name, value in metrics.items():
            ctx.log_metric(name, value)
        if metrics["cheaters"] == 0:
            print("none of the known cheaters was active in the window: nothing to evaluate")
        else:
            m = metrics
            print(
                f"{m['cheaters']:.0f} known cheaters among {len(members)} members. Top 1% "
                f"({m['top_1pct']:.0f}): isolation forest precision {m['precision_top_1pct']:.2f} recall "
                f"{m['recall_top_1pct']:.2f}; event rate alone {m['baseline_precision_top_1pct']:.2f} / "
                f"{m['baseline_recall_top_1pct']:.2f}. Top {m['cheaters']:.0f}: recall "
                f"{m['recall_top_k']:.2f} vs {m['baseline_recall_top_k']:.2f}"
            )
    return {"bundle": bundle, "metrics": metrics, "members": features.num_rows}


@step
def registered(ctx: RunContext, trained: dict[str, Any], promote_to: str) -> dict[str, int]:
    """Register the bundle with its evaluation, and point `promote_to` at it."""
    version = ctx.register_model(
        MODEL,
        trained["bundle"],
        metrics=trained["metrics"],
        params={**ctx.params, "members": trained["members"]},
        training={"features": "FEATURES_SQL", "label": "none: unsupervised, the label column is ignored"},
    )
    if promote_to:
        ctx.registry.promote(ctx.project, MODEL, version, promote_to)
    return {"version": version}


@step(cache=False)
def scored(ctx: RunContext, registered: dict[str, int], flag_share: float) -> dict[str, Any]:
    """Every member's score to anomaly_scores and the prediction store; the top `flag_share` flagged."""
    newest = _newest(ctx)
    result = batch_predict(
        ctx.warehouse,
        ctx.registry,
        MODEL,
        "SELECT * FROM anomaly_features",
        entity=ENTITY,
        output="anomaly_scores",
        run_date=newest.astimezone(UTC).date(),
        version=registered["version"],
        store=PredictionStore(ctx.online),
    )
    flagged_count = max(1, round(flag_share * result.rows))
    flagged = ctx.warehouse.query(
        "SELECT s.member_id, f.member_kind, s.score, "
        "row_number() OVER (ORDER BY s.score DESC, s.member_id) AS rank "
        "FROM anomaly_scores s JOIN anomaly_features f USING (member_id) "
        "WHERE s.run_date = $1 ORDER BY rank LIMIT $2",
        [result.run_date, flagged_count],
    )
    ctx.write_table("anomaly_flagged", flagged)
    ctx.outputs["tables"] = ["anomaly_features", "anomaly_scores", "anomaly_flagged"]
    ctx.log_metric("flagged", flagged.num_rows)
    print(
        f"flagged {flagged.num_rows} of {result.rows} members (top {flag_share:.1%}) in anomaly_flagged; "
        "deliver them with `kawa segments run anomaly_exclusions`"
    )
    return {"scored": result.rows, "flagged": flagged.num_rows, "run_date": result.run_date}


def quiet_bots(
    events: Iterable[Mapping[str, Any]], bots: Iterable[str], keep: int = 12
) -> list[dict[str, Any]]:
    """The events with each session of a bot cut to its first `keep` events: bots at a shopper's volume.

    >>> visit = [{"keys": {"user_id": u, "session_id": s}} for u, s in ["b1", "b1", "b1", "h2", "h2"]]
    >>> [e["keys"]["user_id"] for e in quiet_bots(visit, {"b"}, keep=2)]
    ['b', 'b', 'h', 'h']
    """
    bot_ids = set(bots)
    seen: dict[str, int] = {}
    out = []
    for event in events:
        keys = event.get("keys") or {}
        if keys.get("user_id") in bot_ids:
            session = str(keys.get("session_id"))
            seen[session] = seen.get(session, 0) + 1
            if seen[session] > keep:
                continue
        out.append(dict(event))
    return out


anomaly = Pipeline(
    "anomaly",
    steps=[features, trained, registered, scored],
    params={
        "window_days": 60,
        "timezone": "UTC",
        "trees": 100,
        "seed": 0,
        "flag_share": 0.01,
        "truth_sql": DEMO_TRUTH,
        "promote_to": "production",
    },
    description="Cheater detection: an IsolationForest over behaviour features; the top 1% flagged",
)

anomaly_exclusions = Segment(
    "anomaly_exclusions",
    "SELECT member_id, member_kind, round(score, 4) AS score FROM anomaly_flagged ORDER BY rank",
    entity=ENTITY,
    destination=Export("exports/segments"),
    description="Members the anomaly pipeline flagged, as a CSV file a day (e.g. ad-targeting exclusions)",
)

TEMPLATE = Template(
    name="anomaly",
    summary="bots and cheaters: an IsolationForest over behaviour features; the top 1% exported as a segment",
    pipelines=("anomaly",),
    extras=("anomaly_exclusions",),
)
