"""Demand forecasting: units sold per item (and per category) on each of the next 14 days.

Steps: build examples in SQL (for every item, origin day and horizon 1..14: calendar features of the
target day and lag features known at the origin: demand on the same weekday 7 and 14 days before, the
7- and 28-day means, the same-weekday mean of the last 4 weeks, the category's weekday profile) ->
evaluate on a time-split holdout: a LightGBM model fitted on targets up to 14 days before the newest
day forecasts those 14 days from there, next to the seasonal-naive baseline (the same weekday of the
last week known); WAPE and MAPE (MAPE over the days with demand > 0) per item-day, per category-day
and of each item's units over the holdout (what stock planning sums), printed side by side and
logged -> refit on every day, register and promote -> forecast the next 14 days, write
`demand_forecast` (item_id, day, forecast) and `demand_forecast_category` (category, day, forecast),
publish each item's 14 values (day after the newest day first) to the prediction store as model
`demand_forecast` -> compare the forecast with the stock on hand (`stock_sql`: the demo shop's
`demo_items` by default) and write `stock_cover`: an item whose stock lasts over `overstock_days`
at the forecast rate is over-stocked.

The `overstock_viewers` segment then picks the signed-in users who viewed an over-stocked item in the
last 7 days of events (a coupon for it) and exports them as CSV under `exports/` of the project:
`kawa segments run overstock_viewers --day 2025-10-30` on the demo shop.

Adapt it by editing `DEMAND_SQL` / `ITEMS_SQL` (what a unit of demand is, which items) and the
parameters; run it with `kawa pipeline run forecast` (e.g. `-p stock_sql="SELECT item_id, units AS
stock FROM inventory"`). Per-item daily demand is sparse (most items sell 0 or 1 a day), so item-day
WAPE stays near 1 for any forecast; categories and items' 14-day totals show the model's gain more
plainly.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kawa.models import Bundle
from kawa.pipelines import Pipeline, RunContext, step
from kawa.segments import Export, Segment
from kawa.serving.store import Prediction, PredictionStore, now_rfc3339
from kawa.templates.catalog import Template
from kawa.warehouse import SQLError, Warehouse

MODEL = "demand_forecast"

# One row per item and day that sold: the demand to forecast. Days without a row count as 0.
DEMAND_SQL = """
SELECT item_id, _date AS day, sum(coalesce(quantity, 1))::DOUBLE AS demand
FROM events
WHERE event_name = 'purchase' AND item_id IS NOT NULL
GROUP BY ALL
"""
# The items to forecast, with their category: every item any event names (viewed but never sold: 0).
ITEMS_SQL = """
SELECT item_id, coalesce(arg_max(category, sync_date) FILTER (WHERE category IS NOT NULL), '') AS category
FROM events
WHERE item_id IS NOT NULL
GROUP BY item_id
"""
LIGHTGBM = {"n_estimators": 300, "num_leaves": 31, "learning_rate": 0.05, "n_jobs": 1}
FEATURES = (
    "category", "horizon", "weekday", "day_of_month", "seasonal_naive", "lag_7", "lag_14", "mean_7",
    "mean_28", "weekday_mean_4w", "category_mean_28", "category_weekday_index",
)  # fmt: skip


# The evaluation's rows: label and metric key.
SHOWN = (
    ("item-day WAPE", "wape"),
    ("item-day MAPE*", "mape"),
    ("category-day WAPE", "category_wape"),
    ("category-day MAPE*", "category_mape"),
    ("item holdout-total WAPE", "total_wape"),
)


def examples_sql(horizon: int, min_history_days: int, until: date | None = None) -> str:
    """Every (item, origin, horizon) row: features known at the origin, the target day's demand.

    Rows run from the origin `min_history_days` - 1 days after the first day of demand; targets past
    the last day (`until`, default the newest day of demand) are kept only for the last origin (the
    forecast), with demand NULL. `seasonal_naive` is the baseline: the demand on the target's weekday
    in the newest week known at the origin (7 days before the target for horizons 1-7, 14 for 8-14).
    """
    last = f"DATE '{until.isoformat()}'" if until is not None else "(SELECT max(day) FROM demand)"
    return f"""
    WITH demand AS ({DEMAND_SQL}),
    items AS ({ITEMS_SQL}),
    span AS (SELECT (SELECT min(day) FROM demand) AS first_day, {last} AS last_day),
    days AS (
        SELECT unnest(range(first_day, last_day + INTERVAL 1 DAY, INTERVAL 1 DAY))::DATE AS day FROM span
    ),
    grid AS (
        SELECT i.item_id, i.category, d.day, coalesce(s.demand, 0)::DOUBLE AS demand
        FROM items i CROSS JOIN days d LEFT JOIN demand s ON s.item_id = i.item_id AND s.day = d.day
    ),
    item_days AS (
        SELECT *,
            avg(demand) OVER (PARTITION BY item_id ORDER BY day ROWS 6 PRECEDING) AS mean_7,
            avg(demand) OVER (PARTITION BY item_id ORDER BY day ROWS 27 PRECEDING) AS mean_28,
            avg(demand) OVER (PARTITION BY item_id, dayofweek(day) ORDER BY day ROWS 3 PRECEDING)
                AS weekday_mean_4w
        FROM grid
    ),
    category_days AS (
        SELECT category, day,
            avg(demand) OVER (PARTITION BY category ORDER BY day ROWS 27 PRECEDING) AS mean_28,
            avg(demand) OVER (PARTITION BY category, dayofweek(day) ORDER BY day ROWS 3 PRECEDING)
                AS weekday_mean_4w
        FROM (SELECT category, day, sum(demand) AS demand FROM grid GROUP BY ALL)
    ),
    points AS (
        SELECT o.item_id, o.category, o.day AS origin, h.horizon, o.day + h.horizon AS day,
               o.day + (h.horizon - 7 * ((h.horizon + 6) // 7))::INTEGER AS season_day
        FROM item_days o, span, (SELECT range::INTEGER AS horizon FROM range(1, {horizon + 1})) h
        WHERE o.day >= span.first_day + {min_history_days - 1}
          AND (o.day + h.horizon <= span.last_day OR o.day = span.last_day)
    )
    SELECT p.item_id, p.category, p.origin, p.day, p.horizon,
        isodow(p.day) AS weekday, dayofmonth(p.day) AS day_of_month,
        s.demand AS seasonal_naive,
        CASE WHEN p.horizon <= 7 THEN l7.demand END AS lag_7,
        l14.demand AS lag_14,
        o.mean_7, o.mean_28, s.weekday_mean_4w,
        co.mean_28 AS category_mean_28,
        cs.weekday_mean_4w / nullif(co.mean_28, 0) AS category_weekday_index,
        t.demand
    FROM points p
    JOIN item_days o ON o.item_id = p.item_id AND o.day = p.origin
    JOIN item_days s ON s.item_id = p.item_id AND s.day = p.season_day
    JOIN category_days co ON co.category = p.category AND co.day = p.origin
    JOIN category_days cs ON cs.category = p.category AND cs.day = p.season_day
    LEFT JOIN item_days l7 ON l7.item_id = p.item_id AND l7.day = p.day - 7
    LEFT JOIN item_days l14 ON l14.item_id = p.item_id AND l14.day = p.day - 14
    LEFT JOIN item_days t ON t.item_id = p.item_id AND t.day = p.day
    ORDER BY p.origin, p.item_id, p.horizon
    """


def forecast_examples(warehouse: Warehouse, horizon: int, min_history_days: int) -> pa.Table:
    """The examples of `examples_sql` over the warehouse; ValueError saying what is missing."""
    if horizon < 1 or min_history_days < 1:
        raise ValueError(f"horizon_days={horizon} and min_history_days={min_history_days} must be 1 or more")
    table = warehouse.query(examples_sql(horizon, min_history_days))
    origins = pc.unique(table.column("origin")).to_pylist() if table.num_rows else []
    if len(origins) < horizon + 2:
        needed = horizon + min_history_days + 1
        raise ValueError(
            f"{len(origins)} forecast origins: the demand history is too short for a {horizon}-day holdout "
            f"after {min_history_days} days of history; it needs at least {needed} days of purchases "
            "(check DEMAND_SQL), or lower horizon_days / min_history_days"
        )
    return table


@step
def examples(ctx: RunContext, horizon_days: int, min_history_days: int) -> pa.Table:
    """Training, holdout and forecast rows, point-in-time: each row's features are known at its origin."""
    table = forecast_examples(ctx.warehouse, horizon_days, min_history_days)
    ctx.log_metric("items", pc.count_distinct(table.column("item_id")).as_py())
    ctx.log_metric("example_rows", table.num_rows)
    return table


def _fit(rows: pa.Table, model: dict[str, Any]) -> Bundle:
    """A LightGBM regressor with the `model` parameters, fitted on `rows` (features + demand)."""
    from lightgbm import LGBMRegressor

    # Poisson: demand is a count, and weekday and trend effects multiply. One thread by default: far
    # quicker than many on a busy machine for tables this size.
    estimator = LGBMRegressor(
        objective="poisson", min_child_samples=50, subsample=0.8, subsample_freq=1, colsample_bytree=0.8,
        random_state=0, verbose=-1, **{**LIGHTGBM, **model},
    )  # fmt: skip
    return Bundle.fit(rows.select([*FEATURES, "demand"]), label="demand", estimator=estimator)


def errors(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """WAPE (sum of absolute errors / sum of actuals) and MAPE over the points with actual > 0.

    >>> errors(np.array([0.0, 2.0, 4.0]), np.array([1.0, 1.0, 4.0]))
    {'wape': 0.3333333333333333, 'mape': 0.25}
    """
    absolute = np.abs(actual - predicted)
    sold = actual > 0
    wape = float(absolute.sum() / actual.sum()) if actual.sum() > 0 else float("nan")
    mape = float((absolute[sold] / actual[sold]).mean()) if sold.any() else float("nan")
    return {"wape": wape, "mape": mape}


def _summed(rows: pa.Table, keys: list[str], values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Sums of each of `values` per `keys` of `rows` (e.g. category and day), in one order."""
    table = pa.table({**{k: rows.column(k) for k in keys}, **values})
    summed = table.group_by(keys).aggregate([(name, "sum") for name in values])
    return {name: summed.column(f"{name}_sum").to_numpy() for name in values}


@step(memory="2GB")
def evaluated(
    ctx: RunContext, examples: pa.Table, horizon_days: int, model: dict[str, Any]
) -> dict[str, Any]:
    """Fit on targets up to the holdout origin; forecast the last `horizon_days` days from it."""
    last_origin = pc.max(examples.column("origin")).as_py()
    split = last_origin - timedelta(days=horizon_days)
    split_scalar = pa.scalar(split, examples.column("day").type)
    train = examples.filter(pc.less_equal(examples.column("day"), split_scalar))
    holdout = examples.filter(pc.equal(examples.column("origin"), split_scalar))
    fitted = _fit(train, model)
    actual = holdout.column("demand").to_numpy(zero_copy_only=False).astype(float)
    values = {
        "actual": actual,
        "model": fitted.predict_table(holdout.select(list(FEATURES))),
        "baseline": holdout.column("seasonal_naive").to_numpy(zero_copy_only=False).astype(float),
    }
    metrics: dict[str, float] = {}
    levels = {
        "": values,
        "category_": _summed(holdout, ["category", "day"], values),
        "total_": _summed(holdout, ["item_id"], values),  # each item's units over the whole holdout
    }
    for level, series in levels.items():
        for who, prefix in (("model", ""), ("baseline", "baseline_")):
            for name, value in errors(series["actual"], series[who]).items():
                metrics[f"{prefix}{level}{name}"] = value
    for name, value in metrics.items():
        ctx.log_metric(name, value)
    ctx.log_metric("train_rows", train.num_rows)
    ctx.log_metric("holdout_rows", holdout.num_rows)
    print(
        f"holdout: {horizon_days} days after {split.isoformat()}, {holdout.num_rows} item-days, "
        f"model fitted on {train.num_rows} rows with targets up to {split.isoformat()}"
    )
    print(f"{'':22}{'model':>10}{'seasonal naive':>16}")
    for label, key in SHOWN:
        print(f"{label:22}{metrics[key]:>10.3f}{metrics['baseline_' + key]:>16.3f}")
    print("* MAPE over the days with demand > 0")
    return {"metrics": metrics, "holdout_start": (split + timedelta(days=1)).isoformat()}


@step(memory="2GB")
def trained(
    ctx: RunContext, examples: pa.Table, evaluated: dict[str, Any], model: dict[str, Any], promote_to: str
) -> dict[str, Any]:
    """Refit on every day with a known target; register it with the holdout metrics and promote it."""
    known = examples.filter(pc.is_valid(examples.column("demand")))
    bundle = _fit(known, model)
    version = ctx.register_model(
        MODEL,
        bundle,
        metrics=evaluated["metrics"],
        params={**ctx.params, "train_rows": known.num_rows},
        training={
            "label": "units bought per item and day (DEMAND_SQL)",
            "features": ", ".join(FEATURES),
            "holdout_start": evaluated["holdout_start"],
            "baseline": "seasonal naive: the same weekday of the newest week known",
        },
    )
    if promote_to:
        ctx.registry.promote(ctx.project, MODEL, version, promote_to)
    return {"bundle": bundle, "version": version}


@step
def forecasted(ctx: RunContext, examples: pa.Table, trained: dict[str, Any]) -> dict[str, Any]:
    """Forecast the days after the newest one; replace demand_forecast and demand_forecast_category."""
    last_origin = pc.max(examples.column("origin"))
    future = examples.filter(pc.equal(examples.column("origin"), last_origin))
    values = np.clip(trained["bundle"].predict_table(future.select(list(FEATURES))), 0.0, None)
    items = pa.table(
        {
            "item_id": future.column("item_id"),
            "day": future.column("day"),
            "forecast": pa.array(values, pa.float64()),
        }
    )
    categories = (
        pa.table({"category": future.column("category"), "day": future.column("day"), "forecast": values})
        .group_by(["category", "day"])
        .aggregate([("forecast", "sum")])
        .rename_columns(["category", "day", "forecast"])
        .sort_by([("category", "ascending"), ("day", "ascending")])
    )
    ctx.write_table("demand_forecast", items)
    ctx.write_table("demand_forecast_category", categories)
    ctx.log_metric("forecast_units", float(values.sum()))
    return {"version": trained["version"], "first_day": pc.min(future.column("day")).as_py().isoformat()}


@step(cache=False)
def published(ctx: RunContext, forecasted: dict[str, Any]) -> dict[str, Any]:
    """Each item's forecasts in day order to the prediction store (GET /v1/predictions/demand_forecast/ID)."""
    rows = ctx.read_table("demand_forecast").sort_by([("item_id", "ascending"), ("day", "ascending")])
    now = now_rfc3339()
    by_item: dict[str, list[float]] = {}
    for item, value in zip(*(rows.column(c).to_pylist() for c in ("item_id", "forecast")), strict=True):
        by_item.setdefault(item, []).append(round(value, 4))
    written = PredictionStore(ctx.online).put_many(
        ctx.project,
        MODEL,
        ((item, Prediction(score=days, model_version=forecasted["version"], computed_at=now))
         for item, days in by_item.items()),
    )  # fmt: skip
    ctx.log_metric("published_items", written)
    print(f"published {written} items' forecasts from {forecasted['first_day']} (model version "
          f"{forecasted['version']})")  # fmt: skip
    return {"items": written}


@step
def stock_checked(
    ctx: RunContext,
    forecasted: dict[str, Any],
    stock_sql: str,
    overstock_days: float,
    min_excess_units: float,
) -> dict[str, Any]:
    """Days of cover at the forecast rate per item with stock; write stock_cover, flag the over-stocked."""
    if not stock_sql.strip():
        print("stock_sql is empty: no stock to compare with; stock_cover not written")
        return {"overstocked": 0}
    try:
        table = ctx.warehouse.query(
            f"""
            WITH stock AS ({stock_sql}),
            f AS (SELECT item_id, sum(forecast) AS forecast_units, count(*) AS days
                  FROM demand_forecast GROUP BY item_id)
            SELECT f.item_id, s.stock::DOUBLE AS stock, f.forecast_units,
                   s.stock / greatest(f.forecast_units / f.days, 1e-6) AS cover_days,
                   (s.stock / greatest(f.forecast_units / f.days, 1e-6) > {float(overstock_days)}
                    AND s.stock - f.forecast_units >= {float(min_excess_units)}) AS overstocked
            FROM f JOIN stock s USING (item_id)
            ORDER BY cover_days DESC, item_id
            """
        )
    except SQLError as exc:  # the SQL the user gave: say which parameter to fix
        raise ValueError(
            f"stock_sql failed: {exc}; it must return item_id and stock (units on hand), e.g. "
            "-p stock_sql=\"SELECT item_id, units AS stock FROM inventory\"; -p stock_sql='' skips this step"
        ) from None
    ctx.write_table("stock_cover", table)
    flagged = set(table.filter(table.column("overstocked")).column("item_id").to_pylist())
    ctx.log_metric("overstocked_items", len(flagged))
    if "demo_items" in ctx.warehouse.tables():  # the demo shop's truth: which items it over-stocked
        truth = ctx.warehouse.query("SELECT item_id FROM demo_items WHERE is_overstocked")
        true = set(truth.column("item_id").to_pylist())
        hits = len(flagged & true)
        ctx.log_metric("overstock_precision", hits / len(flagged) if flagged else float("nan"))
        ctx.log_metric("overstock_recall", hits / len(true) if true else float("nan"))
        print(
            f"over-stocked: {len(flagged)} items flagged, {hits} of the shop's {len(true)} over-stocked ones"
        )
    else:
        print(f"over-stocked: {len(flagged)} items hold over {overstock_days:g} days of forecast demand")
    return {"overstocked": len(flagged)}


forecast = Pipeline(
    "forecast",
    steps=[examples, evaluated, trained, forecasted, published, stock_checked],
    params={
        "horizon_days": 14,
        "min_history_days": 21,
        # LightGBM settings (LGBMRegressor arguments): -p 'model={"num_leaves": 63}' changes that one.
        "model": LIGHTGBM,
        "promote_to": "production",
        "stock_sql": "SELECT item_id, stock FROM demo_items",
        "overstock_days": 90.0,
        "min_excess_units": 10.0,
    },
    description="Daily demand per item and category for the next 14 days (LightGBM vs seasonal naive)",
)

# Signed-in users who viewed an over-stocked item (stock_cover, written by the pipeline) in the last 7
# days of events up to the run: a coupon for it. `kawa segments run overstock_viewers --day D`.
overstock_viewers = Segment(
    "overstock_viewers",
    """
    SELECT v.keys.user_id AS user_id, arg_max(v.item_id, v.sync_date) AS item_id,
           count(DISTINCT v.item_id) AS items, max(v.sync_date) AS viewed_at
    FROM events v JOIN stock_cover c ON c.item_id = v.item_id AND c.overstocked
    WHERE v.event_name = 'view' AND v.keys.user_id IS NOT NULL AND v.sync_date <= $logical_date
      AND v.sync_date > (SELECT max(sync_date) FROM events WHERE sync_date <= $logical_date) - INTERVAL 7 DAYS
    GROUP BY 1
    ORDER BY user_id
    """,
    destination=Export("exports", format="csv"),
    description="Users who viewed an over-stocked item in the last 7 days of events",
)

TEMPLATE = Template(
    name="forecast",
    summary="daily demand per item and category for 14 days (LightGBM vs seasonal naive); over-stock segment",
    pipelines=("forecast",),
    extras=("overstock_viewers",),
)
