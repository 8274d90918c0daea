"""Run policy: kawa's defaults for every pipeline, overridden by the pipeline and then by the step."""

from __future__ import annotations

import pytest

from kawa.pipelines import Pipeline, RunEvent, StepDefinitionError, policy_for, run_pipeline, step
from kawa.pipelines.cache import StepResults
from kawa.pipelines.policy import DEFAULT_RETRY_BACKOFF_S, DEFAULT_TIMEOUT_S
from kawa.runtime import Runtime

attempts: list[int] = []


@step
def extract() -> int:
    return 1


@step(timeout_s=30, retries=5)
def load(extract: int) -> int:
    attempts.append(extract)
    if len(attempts) < 3:
        raise TimeoutError("the warehouse is busy")
    return extract


def test_defaults_depend_on_whether_anyone_is_watching() -> None:
    plain = Pipeline("plain", steps=[extract])
    manual = policy_for(plain, extract, "manual")
    assert (manual.timeout_s, manual.retries, manual.retry_backoff_s) == (
        DEFAULT_TIMEOUT_S,
        0,
        DEFAULT_RETRY_BACKOFF_S,
    )
    assert policy_for(plain, extract, "scheduled").retries == 2
    assert policy_for(plain, extract, "backfill").retries == 2
    assert policy_for(plain, extract, "test").retries == 0


def test_the_pipeline_overrides_the_defaults_and_the_step_the_pipeline() -> None:
    etl = Pipeline("etl", steps=[extract, load], timeout_s=600, retries=1, retry_backoff_s=5)
    first = policy_for(etl, extract, "scheduled")
    assert (first.timeout_s, first.retries, first.retry_backoff_s) == (600.0, 1, 5.0)
    second = policy_for(etl, load, "manual")
    assert (second.timeout_s, second.retries, second.retry_backoff_s) == (30.0, 5, 5.0)
    assert [second.backoff_s(n) for n in (1, 2, 3)] == [5.0, 10.0, 20.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout_s": 0}, "timeout_s=0 must be a positive number"),
        ({"retries": -1}, "retries=-1 must be a whole number"),
        ({"retries": 1.5}, "retries=1.5 must be a whole number"),
        ({"retry_backoff_s": -2}, "retry_backoff_s=-2 must be 0 or more"),
    ],
)
def test_malformed_settings_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(StepDefinitionError, match=message):
        Pipeline("bad", steps=[extract], **kwargs)  # type: ignore[arg-type]
    with pytest.raises(StepDefinitionError, match=message):
        step(**kwargs)(lambda: None)  # type: ignore[call-overload]


def test_a_retried_step_reports_each_retry(runtime: Runtime) -> None:
    attempts.clear()
    events: list[RunEvent] = []
    etl = Pipeline("etl", steps=[extract, load], retry_backoff_s=0)
    record = run_pipeline(runtime, etl, kind="scheduled", on_event=events.append)
    assert record.succeeded and len(attempts) == 3
    retries = [(e.step, e.status, e.detail) for e in events if e.kind == "step_retrying"]
    assert retries == [("load", "failed", "attempt 2 of 6 in 0s"), ("load", "failed", "attempt 3 of 6 in 0s")]
    assert StepResults(runtime).get(record.run_id)["load"]["attempts"] == 3
