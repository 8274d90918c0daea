"""Running pipelines in process: records in the metadata store, failures, metrics, artifacts, logs."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from kawa.pipelines import (
    ParamError,
    Pipeline,
    RunContext,
    RunEvent,
    RunStore,
    log_path,
    new_run_id,
    run_pipeline,
    step,
)
from kawa.runtime import Runtime
from kawa.stores.metadata.tables import runs

seen: dict[str, Any] = {}


@step
def orders(cutoff: date, ctx: RunContext) -> list[int]:
    print(f"reading orders before {cutoff}")
    logging.getLogger("shop.orders").info("found %d orders", 3)
    seen["ctx"] = {
        "run_id": ctx.run_id,
        "pipeline": ctx.pipeline,
        "experiment": ctx.experiment,
        "project": ctx.project,
        "step": ctx.step,
        "params": dict(ctx.params),
        "logical_date": ctx.logical_date,
    }
    return [10, 20, 30]


@step(memory="2GB")
def train(orders: list[int], ctx: RunContext, fail: bool) -> float:
    ctx.log_metric("auc", 0.75)
    ctx.log_metric("rows", len(orders))
    ctx.log_metric("nan_metric", float("nan"))
    ctx.log_artifact("model/notes.txt", "a tiny model")
    ctx.outputs["model"] = {"name": "loyalty", "version": 4}
    if fail:
        raise RuntimeError("the estimator diverged")
    return sum(orders) / len(orders)


@step
def publish(train: float, ctx: RunContext) -> None:
    ctx.outputs["tables"] = ["scores"]
    ctx.log_metric("mean", train)


loyalty = Pipeline(
    "loyalty", steps=[publish, train, orders], params={"cutoff": date(2026, 10, 1), "fail": False}
)


def test_a_successful_run_is_recorded_with_its_steps_params_metrics_and_artifacts(runtime: Runtime) -> None:
    record = run_pipeline(runtime, loyalty, {"cutoff": "2026-11-01"}, experiment="dev")
    assert record.status == "succeeded" and record.error is None
    assert record.params == {"cutoff": "2026-11-01", "fail": False}
    assert record.metrics == {"auc": 0.75, "rows": 3.0, "nan_metric": None, "mean": 20.0}
    notes = f"runs/{record.run_id}/artifacts/model/notes.txt"
    assert record.artifacts == [notes]
    assert runtime.artifacts.get_bytes(notes) == b"a tiny model"

    stored = RunStore(runtime.metadata).get(record.run_id)
    assert stored is not None
    assert (stored.project, stored.pipeline, stored.experiment, stored.kind) == (
        "shop",
        "loyalty",
        "dev",
        "manual",
    )
    assert stored.created_at <= stored.started_at <= stored.finished_at  # type: ignore[operator]
    assert [(s.step, s.position, s.status) for s in stored.steps] == [
        ("orders", 0, "succeeded"),
        ("train", 1, "succeeded"),
        ("publish", 2, "succeeded"),
    ]
    by_name = {s.step: s for s in stored.steps}
    assert by_name["train"].resources == {"memory": "2GB"}
    assert by_name["train"].metrics == {"auc": 0.75, "rows": 3.0, "nan_metric": None}
    assert by_name["train"].artifacts == [notes]
    assert by_name["train"].outputs == {"model": {"name": "loyalty", "version": 4}}
    assert by_name["publish"].outputs == {"tables": ["scores"]}
    for s in stored.steps:
        assert s.started_at is not None and s.finished_at is not None and s.duration_s is not None
        assert s.duration_s >= 0 and s.log == log_path(record.run_id, s.step)


def test_the_context_carries_the_run(runtime: Runtime) -> None:
    when = datetime(2026, 10, 2, 3, 0, tzinfo=UTC)
    record = run_pipeline(runtime, loyalty, experiment="prod", logical_date=when)
    assert seen["ctx"] == {
        "run_id": record.run_id,
        "pipeline": "loyalty",
        "experiment": "prod",
        "project": "shop",
        "step": "orders",
        "params": {"cutoff": date(2026, 10, 1), "fail": False},
        "logical_date": when,
    }
    assert record.logical_date == when


def test_print_and_logging_of_each_step_are_kept_as_its_log(runtime: Runtime) -> None:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    record = run_pipeline(runtime, loyalty)
    text = runtime.artifacts.get_bytes(log_path(record.run_id, "orders")).decode()
    assert "reading orders before 2026-10-01\n" in text
    assert "INFO shop.orders: found 3 orders" in text
    # The logging set-up is as it was: no handler left behind, the level restored.
    assert (root.level, root.handlers) == (level, handlers)


def test_a_failing_step_fails_the_run_records_the_traceback_and_skips_the_rest(runtime: Runtime) -> None:
    record = run_pipeline(runtime, loyalty, {"fail": "true"})
    assert record.status == "failed"
    assert record.error is not None
    assert record.error.startswith("step 'train' failed:\nTraceback (most recent call last):")
    assert 'raise RuntimeError("the estimator diverged")' in record.error
    assert record.error.rstrip().endswith("RuntimeError: the estimator diverged")
    assert [(s.step, s.status) for s in record.steps] == [
        ("orders", "succeeded"),
        ("train", "failed"),
        ("publish", "skipped"),
    ]
    train_step = record.steps[1]
    assert train_step.error is not None and "the estimator diverged" in train_step.error
    assert train_step.finished_at is not None
    # What the step recorded before it failed is kept; the skipped step has no times.
    assert train_step.metrics["auc"] == 0.75 and record.metrics["auc"] == 0.75
    assert record.steps[2].started_at is None and record.steps[2].finished_at is None
    log = runtime.artifacts.get_bytes(log_path(record.run_id, "train")).decode()
    assert "RuntimeError: the estimator diverged" in log


def test_a_step_that_calls_sys_exit_fails_without_ending_the_process(runtime: Runtime) -> None:
    @step
    def leave() -> None:
        raise SystemExit(3)

    record = run_pipeline(runtime, Pipeline("exits", steps=[leave]))
    assert record.status == "failed" and record.error is not None and "SystemExit: 3" in record.error


def test_bad_parameters_are_refused_before_anything_is_recorded(runtime: Runtime) -> None:
    with pytest.raises(ParamError, match="no parameter 'cutof'"):
        run_pipeline(runtime, loyalty, {"cutof": "2026-10-01"})
    with pytest.raises(ParamError, match="'cutoff' takes a date"):
        run_pipeline(runtime, loyalty, {"cutoff": "yesterday"})
    with runtime.metadata.connect() as conn:
        assert conn.execute(select(runs)).first() is None


def test_experiments_keep_runs_apart_and_listing_is_newest_first(runtime: Runtime) -> None:
    dev = [run_pipeline(runtime, loyalty, experiment="dev").run_id for _ in range(2)]
    prod = run_pipeline(runtime, loyalty, experiment="prod").run_id
    store = RunStore(runtime.metadata)
    assert [r.run_id for r in store.list("shop", experiment="dev")] == dev[::-1]
    assert [r.run_id for r in store.list("shop", experiment="prod")] == [prod]
    assert [r.run_id for r in store.list("shop")] == [prod, *dev[::-1]]
    assert [r.run_id for r in store.list("shop", limit=1)] == [prod]
    assert store.list("shop", pipeline="other") == []
    assert store.list("other-project") == []
    assert [r.experiment for r in store.list("shop", experiment="dev")] == ["dev", "dev"]


def test_runs_are_found_by_a_unique_prefix_of_their_id(runtime: Runtime) -> None:
    record = run_pipeline(runtime, loyalty)
    store = RunStore(runtime.metadata)
    assert store.resolve(record.run_id[:16]) == record.run_id
    assert store.get("0" * 20) is None
    with pytest.raises(LookupError, match="no run"):
        store.resolve("ffff")
    with pytest.raises(LookupError, match="not a run id"):
        store.resolve("x%")


def test_run_ids_are_unique_and_sort_by_creation() -> None:
    ids = [new_run_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids) and ids == sorted(ids)
    assert all(len(i) == 20 and int(i, 16) >= 0 for i in ids)


def test_progress_events_follow_the_run(runtime: Runtime) -> None:
    events: list[RunEvent] = []
    record = run_pipeline(runtime, loyalty, {"fail": True}, on_event=events.append)
    assert [(e.kind, e.step, e.status) for e in events] == [
        ("run_started", None, None),
        ("step_started", "orders", None),
        ("step_finished", "orders", "succeeded"),
        ("step_started", "train", None),
        ("step_finished", "train", "failed"),
        ("run_finished", None, "failed"),
    ]
    assert all(e.run_id == record.run_id for e in events)


def test_a_broken_progress_callback_does_not_change_the_run(runtime: Runtime) -> None:
    def explode(event: RunEvent) -> None:
        raise ValueError("printer broke")

    assert run_pipeline(runtime, loyalty, on_event=explode).status == "succeeded"


def test_step_defaults_apply_to_inputs_nobody_provides(runtime: Runtime) -> None:
    @step
    def scaled(factor: int = 3) -> int:
        return 2 * factor

    @step
    def check(scaled: int, ctx: RunContext) -> None:
        ctx.log_metric("scaled", scaled)

    assert run_pipeline(runtime, Pipeline("defaults", steps=[scaled, check])).metrics == {"scaled": 6.0}


def test_pipeline_run_uses_the_project_in_the_working_folder(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kawa.yaml").write_text("project: shop\n")
    record = loyalty.run({"cutoff": date(2026, 9, 1)}, experiment="nb")
    assert record.status == "succeeded" and record.params["cutoff"] == "2026-09-01"
    assert (tmp_path / ".kawa" / "metadata.sqlite3").is_file()
