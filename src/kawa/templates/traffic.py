"""Access forecasting for planned autoscaling: events per hour for the next 24-48 hours, and the servers
they need.

Steps: count the events of every hour (hours without any count as 0; the hour of the newest event may
still be filling, so the series ends before it) -> evaluate on a time-split holdout: three LightGBM
quantile models (p10, p50, p90) over hour of day, weekday, the same hour a day and a week before
(lag_24, lag_168) and the mean of the same hour over the last 7 days, fitted on the hours before the
last `holdout_days` days, forecast `horizon_hours` ahead from each midnight of the holdout (beyond 24
hours ahead, lag_24 is the model's own p50), next to the seasonal-naive forecast (the same hour last
week): WAPE, MAPE and how often the p10-p90 interval held the actual count -> refit on every hour and
register the three models -> forecast the next `horizon_hours` hours, write `traffic_forecast` (hour,
p10, p50, p90, servers) with servers = ceil(p90 / per_server_capacity), publish each hour to the
prediction store (model `access_forecast`, key the hour as `2025-10-31T05:00Z`), and print the
server-hours saved against a fixed fleet sized for the peak.

WAPE (sum of |error| / sum of events) weighs hours by their traffic, as servers do; MAPE averages the
hours alike, so near-empty night hours dominate it (hours with no event are left out of it).

Use it in a project's pipelines.py: `from kawa.templates.traffic import access_forecast`; run it with
`kawa pipeline run access_forecast -p per_server_capacity=500 -p horizon_hours=24`. To count other
requests, edit `HOURLY_SQL`.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from kawa.models import Bundle
from kawa.pipelines import Pipeline, RunContext, step
from kawa.serving.store import Prediction, PredictionStore, now_rfc3339
from kawa.templates._zone import time_zone
from kawa.templates.catalog import Template

MODEL = "access_forecast"  # the prediction store's model name; the registered models add _p10/_p50/_p90
QUANTILES = {"p10": 0.1, "p50": 0.5, "p90": 0.9}
FEATURES = ("hour", "weekday", "lag_24", "lag_168", "mean_7d")
WEEK = 168  # hours of history a feature row needs
MIN_TRAIN_DAYS = 7  # days of feature rows before the holdout

# Every event but kawa's own run notifications, counted per UTC hour (as naive UTC times, so the
# session's time zone does not move the buckets).
HOURLY_SQL = """
SELECT date_trunc('hour', timezone('UTC', sync_date)) AS hour, count(*) AS events
FROM events
WHERE event_name <> 'pipeline_run_finished'
GROUP BY 1 ORDER BY 1
"""


@step
def hourly(
    ctx: RunContext, holdout_days: int, horizon_hours: int, per_server_capacity: float, timezone: str
) -> pa.Table:
    """Events per hour, from the first event's hour to the hour before the newest event's."""
    if not per_server_capacity > 0:
        raise ValueError(
            f"per_server_capacity={per_server_capacity}: give the events per hour one server handles, above 0"
        )
    time_zone(timezone)
    if not 1 <= horizon_hours <= WEEK:
        raise ValueError(
            f"horizon_hours={horizon_hours}: forecast 1 to {WEEK} hours ahead (the baseline, the same "
            "hour last week, is known only that far)"
        )
    if holdout_days < 1 or holdout_days * 24 < horizon_hours:
        raise ValueError(
            f"holdout_days={holdout_days} must hold at least one horizon of {horizon_hours} hours; "
            f"use holdout_days >= {math.ceil(horizon_hours / 24)}"
        )
    counted = ctx.warehouse.query(HOURLY_SQL)
    if counted.num_rows == 0:
        raise ValueError("no events yet: send events first (kawa demo does)")
    found = counted.column("hour").to_numpy(zero_copy_only=False).astype("datetime64[h]")
    hours = np.arange(found[0], found[-1], dtype="datetime64[h]")  # the newest hour is left out
    events = np.zeros(len(hours), dtype=np.int64)
    inside = found < found[-1]
    events[(found[inside] - found[0]).astype(np.int64)] = counted.column("events").to_numpy()[inside]
    needed = WEEK + (MIN_TRAIN_DAYS + holdout_days) * 24
    if len(hours) < needed:
        raise ValueError(
            f"{len(hours)} hours of events ({hours[0] if len(hours) else found[0]} to {found[-1]} UTC) "
            f"are too few: a forecast needs a week of history per row, {MIN_TRAIN_DAYS} days to train on "
            f"and the {holdout_days}-day holdout, {needed} hours in all; load more history or lower "
            "holdout_days"
        )
    ctx.log_metric("hours", len(hours))
    ctx.log_metric("mean_events_per_hour", float(events.mean()))
    return pa.table({"hour": pa.array(hours.astype("datetime64[us]")), "events": pa.array(events)})


Calendar = tuple[np.ndarray, np.ndarray]  # hour of day and weekday (Monday 0) of each hour of a series


def _series(hourly: pa.Table, timezone: str, ahead: int = 0) -> tuple[np.ndarray, np.ndarray, Calendar]:
    """The counts, their UTC hours plus `ahead` more, and the calendar of all those hours in `timezone`."""
    y = hourly.column("events").to_numpy()
    hours = hourly.column("hour").to_numpy().astype("datetime64[h]")
    hours = np.concatenate([hours, hours[-1] + np.arange(1, ahead + 1)])
    return y, hours, _calendar(hours, timezone)


def _calendar(hours: np.ndarray, timezone: str) -> Calendar:
    """Hour of day and weekday (Monday 0) of each UTC hour, in `timezone`."""
    zone = time_zone(timezone)
    seconds = hours.astype("datetime64[s]").astype(np.int64).tolist()
    local = [datetime.fromtimestamp(s, UTC).astimezone(zone) for s in seconds]
    return np.array([t.hour for t in local]), np.array([t.weekday() for t in local])


def _rows(y: np.ndarray, t: np.ndarray, calendar: Calendar) -> pa.Table:
    """Feature rows for hours `t` (one per row of `y`, a series per forecast origin, or all of one)."""
    series = np.arange(len(t)) if y.ndim == 2 else slice(None)
    at = (lambda lag: y[series, t - lag]) if y.ndim == 2 else (lambda lag: y[t - lag])
    return pa.table(
        {
            "hour": calendar[0][t],
            "weekday": calendar[1][t],
            "lag_24": at(24),
            "lag_168": at(WEEK),
            "mean_7d": np.mean([at(24 * d) for d in range(1, 8)], axis=0),
        }
    )


def _fit(
    y: np.ndarray, calendar: Calendar, end: int, num_leaves: int, learning_rate: float
) -> dict[str, Bundle]:
    """One LightGBM quantile model per quantile, on the hours from WEEK up to `end`."""
    from lightgbm import LGBMRegressor

    t = np.arange(WEEK, end)
    table = _rows(y.astype(float), t, calendar).append_column("events", pa.array(y[t].astype(float)))
    return {
        name: Bundle.fit(
            table,
            label="events",
            estimator=LGBMRegressor(
                objective="quantile",
                alpha=q,
                n_estimators=200,
                learning_rate=learning_rate,
                num_leaves=num_leaves,
                min_child_samples=20,
                verbose=-1,
                n_jobs=1,  # a few hundred rows: threads cost more than they save
            ),
        )
        for name, q in QUANTILES.items()
    }


def _forecast(
    models: dict[str, Bundle],
    y: np.ndarray,
    origins: np.ndarray,
    horizon: int,
    calendar: Calendar,
) -> dict[str, np.ndarray]:
    """p10/p50/p90 (origins x horizon) for the `horizon` hours from each origin, knowing only the hours
    of `y` before it: an hour not known yet enters later rows' lags as its p50."""
    known = np.full((len(origins), int(origins.max()) + horizon), np.nan)
    for i, origin in enumerate(origins):
        known[i, :origin] = y[:origin]
    out = {name: np.zeros((len(origins), horizon)) for name in QUANTILES}
    for k in range(horizon):
        t = origins + k
        rows = _rows(known, t, calendar)
        predicted = np.sort(np.column_stack([models[n].predict_table(rows) for n in QUANTILES]), axis=1)
        for j, name in enumerate(QUANTILES):
            out[name][:, k] = np.maximum(predicted[:, j], 0.0)
        known[np.arange(len(origins)), t] = out["p50"][:, k]
    return out


def servers_for(p90: np.ndarray, per_server_capacity: float) -> np.ndarray:
    """Servers to run each hour: enough for the p90 count, at least one.

    >>> servers_for(np.array([0.0, 99.0, 100.0, 101.0]), 100).tolist()
    [1, 1, 1, 2]
    """
    return np.maximum(np.ceil(p90 / per_server_capacity), 1).astype(np.int64)


@step(memory="2GB")
def evaluated(
    ctx: RunContext,
    hourly: pa.Table,
    horizon_hours: int,
    holdout_days: int,
    per_server_capacity: float,
    timezone: str,
    num_leaves: int,
    learning_rate: float,
) -> dict[str, float]:
    """Holdout metrics of forecasts made from each midnight of the last `holdout_days` days."""
    y, hours, calendar = _series(hourly, timezone)
    start = len(y) - holdout_days * 24
    models = _fit(y, calendar, start, num_leaves, learning_rate)
    origins = np.arange(start, len(y) - horizon_hours + 1, 24)
    predicted = _forecast(models, y, origins, horizon_hours, calendar)
    t = origins[:, None] + np.arange(horizon_hours)[None, :]
    actual, naive = y[t].astype(float), y[t - WEEK].astype(float)
    servers = servers_for(predicted["p90"], per_server_capacity)
    metrics = {
        "wape": _wape(actual, predicted["p50"]),
        "baseline_wape": _wape(actual, naive),
        "mape": _mape(actual, predicted["p50"]),
        "baseline_mape": _mape(actual, naive),
        "coverage_p10_p90": float(np.mean((actual >= predicted["p10"]) & (actual <= predicted["p90"]))),
        "shortfall_share": float(np.mean(actual > servers * per_server_capacity)),
        "holdout_hours": float(actual.size),
    }
    for name, value in metrics.items():
        ctx.log_metric(name, value)
    print(
        f"holdout: {len(origins)} forecasts of {horizon_hours} h from the midnights after "
        f"{hours[start]} UTC: WAPE {metrics['wape']:.3f} vs seasonal-naive {metrics['baseline_wape']:.3f}, "
        f"MAPE {metrics['mape']:.3f} vs {metrics['baseline_mape']:.3f}; the p10-p90 interval held "
        f"{metrics['coverage_p10_p90']:.0%} of the hours (80% expected); the p90 servers fell short in "
        f"{metrics['shortfall_share']:.1%} of them"
    )
    return metrics


def _wape(actual: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.abs(actual - predicted).sum() / max(actual.sum(), 1.0))


def _mape(actual: np.ndarray, predicted: np.ndarray) -> float:
    seen = actual > 0
    return float(np.mean(np.abs(actual - predicted)[seen] / actual[seen])) if seen.any() else math.nan


@step(memory="2GB")
def trained(
    hourly: pa.Table, evaluated: dict[str, float], timezone: str, num_leaves: int, learning_rate: float
) -> dict[str, Bundle]:
    """The three quantile models refitted on every hour, for the forecast."""
    y, _, calendar = _series(hourly, timezone)
    return _fit(y, calendar, len(y), num_leaves, learning_rate)


@step
def registered(
    ctx: RunContext,
    hourly: pa.Table,
    trained: dict[str, Bundle],
    evaluated: dict[str, float],
    promote_to: str,
) -> dict[str, int]:
    """Register access_forecast_p10, _p90 and _p50 with the holdout metrics; promote them to `promote_to`."""
    hours = hourly.column("hour")
    versions = {}
    for name in ("p10", "p90", "p50"):  # p50 last: the run's model is the median forecast
        model = f"{MODEL}_{name}"
        versions[name] = ctx.register_model(
            model,
            trained[name],
            metrics=evaluated,
            params={**ctx.params, "quantile": QUANTILES[name]},
            training={
                "series": "events per hour (HOURLY_SQL)",
                "features": list(FEATURES),
                "hours": f"{hours[0].as_py():%Y-%m-%d %H:00} to {hours[-1].as_py():%Y-%m-%d %H:00} UTC",
            },
        )
        if promote_to:
            ctx.registry.promote(ctx.project, model, versions[name], promote_to)
    return versions


@step(cache=False)
def forecasted(
    ctx: RunContext,
    hourly: pa.Table,
    trained: dict[str, Bundle],
    registered: dict[str, int],
    horizon_hours: int,
    per_server_capacity: float,
    timezone: str,
) -> dict[str, Any]:
    """The next `horizon_hours` hours: write traffic_forecast, publish each hour, print the saving."""
    y, hours, calendar = _series(hourly, timezone, ahead=horizon_hours)
    future = hours[len(y) :]
    predicted = {
        n: v[0] for n, v in _forecast(trained, y, np.array([len(y)]), horizon_hours, calendar).items()
    }
    servers = servers_for(predicted["p90"], per_server_capacity)
    table = pa.table(
        {
            "hour": pa.array(future.astype("datetime64[us]")).cast(pa.timestamp("us", tz="UTC")),
            **{name: pa.array(predicted[name]) for name in QUANTILES},
            "servers": pa.array(servers),
        }
    )
    ctx.write_table("traffic_forecast", table)
    ctx.outputs["tables"] = ["traffic_forecast"]
    peak = int(servers.max())
    planned, fixed = int(servers.sum()), peak * horizon_hours
    saving = 1.0 - planned / fixed
    stamp = now_rfc3339()
    keys = [f"{h.astype(datetime):%Y-%m-%dT%H:%M}Z" for h in future]
    PredictionStore(ctx.online).put_many(
        ctx.project,
        MODEL,
        (
            (
                key,
                Prediction(
                    score={"p10": p10, "p50": p50, "p90": p90, "servers": int(n)},
                    model_version=registered["p50"],
                    computed_at=stamp,
                ),
            )
            for key, p10, p50, p90, n in zip(
                keys, *(predicted[q].tolist() for q in QUANTILES), servers.tolist(), strict=True
            )
        ),
    )
    for name, value in (("planned_server_hours", planned), ("fixed_server_hours", fixed), ("saving", saving)):
        ctx.log_metric(name, value)
    print(
        f"next {horizon_hours} h from {keys[0]}: p90 peaks at {predicted['p90'].max():.0f} events/h -> "
        f"{peak} servers of {per_server_capacity:g} events/h; planned {planned} server-hours vs {fixed} for "
        f"a fixed fleet sized for the peak: {saving:.0%} fewer"
    )
    return {"first_hour": keys[0], "peak_servers": peak, "planned": planned, "fixed": fixed, "saving": saving}


access_forecast = Pipeline(
    "access_forecast",
    steps=[hourly, evaluated, trained, registered, forecasted],
    params={
        "horizon_hours": 48,
        "holdout_days": 7,
        "per_server_capacity": 100.0,
        "timezone": "UTC",
        "num_leaves": 7,
        "learning_rate": 0.05,
        "promote_to": "production",
    },
    description="Events per hour for the next 48 hours with p10-p90 intervals, and the servers they need",
)

TEMPLATE = Template(
    name="access_forecast",
    summary="events per hour for the next 24-48 h with p10-p90 intervals, and the servers to plan for them",
    pipelines=("access_forecast",),
)
