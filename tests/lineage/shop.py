"""A small shop's pipelines for lineage tests: raw_orders -> orders -> daily_kpis -> model -> forecasts."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
from sklearn.linear_model import LinearRegression

from kawa.models import Bundle
from kawa.pipelines import Pipeline, RunContext, step
from kawa.runtime import Runtime
from kawa.warehouse.load import write_table

DAY = datetime(2026, 11, 1, tzinfo=UTC)


@step
def clean(ctx: RunContext, fail: bool) -> int:
    if fail:
        raise RuntimeError("the raw orders are malformed")
    orders = ctx.warehouse.query("SELECT user_id, amount FROM raw_orders WHERE amount > 0")
    ctx.write_table("orders", orders, partition=ctx.logical_date)
    return orders.num_rows


@step
def daily(ctx: RunContext, fail: bool) -> None:
    if fail:
        raise RuntimeError("division by zero users")
    orders = ctx.read_table("orders", partition=ctx.logical_date)
    users = len(set(orders.column("user_id").to_pylist()))
    revenue = sum(orders.column("amount").to_pylist())
    table = pa.table(
        {"day": [1.0, 2.0, 3.0], "users": [users] * 3, "revenue": [revenue, revenue * 2, revenue * 3]}
    )
    ctx.write_table("daily_kpis", table, partition=ctx.logical_date)


@step
def fit(ctx: RunContext) -> int:
    with ctx.warehouse.connect() as db:
        history = db.sql("SELECT day, revenue FROM daily_kpis").to_arrow_table()
    bundle = Bundle.fit(history, label="revenue", estimator=LinearRegression(), task="regression")
    version = ctx.register_model("forecast", bundle, metrics={"rows": history.num_rows})
    ctx.registry.promote(ctx.project, "forecast", version)
    return version


@step
def predict(ctx: RunContext) -> None:
    model = ctx.load_model("forecast")
    days = pa.table({"day": [4.0, 5.0]})
    predicted = [float(p) for p in model.predict_table(days)]
    ctx.write_table(
        "forecasts", pa.table({"day": [4.0, 5.0], "revenue": predicted}), partition=ctx.logical_date
    )


ingest = Pipeline("ingest", steps=[clean], params={"fail": False})
kpis = Pipeline("kpis", steps=[daily], params={"fail": False})
train = Pipeline("train", steps=[fit])
score = Pipeline("score", steps=[predict])


def raw_orders(runtime: Runtime, amounts: list[float]) -> None:
    """Load `raw_orders` the way `kawa load` does, outside any pipeline."""
    data = pa.table({"user_id": [f"u{i % 3}" for i in range(len(amounts))], "amount": amounts})
    write_table(runtime.warehouse("shop"), "raw_orders", data)
