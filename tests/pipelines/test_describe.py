"""Pipelines as plain data (steps, edges, parameter kinds), form overrides, and a run's step graph."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from kawa.pipelines import Pipeline, RunContext, step
from kawa.pipelines.describe import describe_pipeline, form_overrides, pipelines_overview, run_steps
from kawa.pipelines.runner import record_run
from kawa.runtime import Runtime
from kawa.schedule import Schedule


@step
def orders(ctx: RunContext, cutoff: date) -> list[int]:
    """Orders before the cutoff."""
    return [1, 2, 3]


@step(memory="1GB", cache=False)
def totals(orders: list[int], scale: float, tag: str | None = None) -> float:
    return sum(orders) * scale


@step
def report(totals: float, orders: list[int], loud: bool) -> str:
    return f"{totals} over {len(orders)}"


nightly = Pipeline(
    "nightly",
    steps=[report, totals, orders],
    params={"cutoff": date(2026, 1, 1), "scale": 1.5, "loud": False, "tag": None, "only": ["a"]},
    description="Nightly totals",
    schedule=Schedule(start=datetime.now(UTC) + timedelta(days=2), every="1d"),
)


def test_a_pipeline_is_described_with_steps_edges_and_parameter_kinds() -> None:
    data = describe_pipeline(nightly)
    assert data["name"] == "nightly" and data["description"] == "Nightly totals"
    assert [s["name"] for s in data["steps"]] == ["orders", "totals", "report"]
    assert data["edges"] == [["orders", "totals"], ["totals", "report"], ["orders", "report"]]
    params = {p["name"]: (p["kind"], p["text"], p["default"]) for p in data["params"]}
    assert params == {
        "cutoff": ("date", "2026-01-01", "2026-01-01"),
        "scale": ("float", "1.5", 1.5),
        "loud": ("bool", "false", False),
        "tag": ("any", "null", None),
        "only": ("list", '["a"]', ["a"]),
    }
    totals_step = data["steps"][1]
    assert totals_step["after"] == ["orders"] and totals_step["params"] == ["scale", "tag"]
    assert totals_step["resources"] == {"memory": "1GB"} and totals_step["cache"] is False
    assert data["steps"][0]["description"] == "Orders before the cutoff."


def test_a_form_overrides_only_what_it_changed() -> None:
    sent = {"cutoff": "2026-01-01", "scale": " 1.5 ", "loud": "true", "tag": "null", "only": '["a", "b"]'}
    assert form_overrides(nightly, sent) == {"loud": "true", "only": '["a", "b"]'}
    # What stays untouched keeps its default exactly, a None default included.
    values = nightly.resolve_params(form_overrides(nightly, sent))
    assert values["tag"] is None and values["loud"] is True and values["only"] == ["a", "b"]
    assert form_overrides(nightly, {"unknown": "1"}) == {"unknown": "1"}  # refused later, by name


def test_a_recorded_run_keeps_the_code_edges_or_falls_back_to_run_order() -> None:
    shape = run_steps(["orders", "totals", "report"], nightly)
    assert shape["edges"] == [["orders", "totals"], ["totals", "report"], ["orders", "report"]]
    assert shape["steps"][2] == {"name": "report", "after": ["totals", "orders"]}
    gone = run_steps(["load", "train"], None)  # the pipeline left the code
    assert gone["edges"] == [["load", "train"]] and gone["steps"][0]["after"] == []
    renamed = run_steps(["orders", "old_step"], nightly)
    assert renamed["edges"] == [["orders", "old_step"]]


def test_the_overview_adds_the_schedule_and_the_latest_run(runtime: Runtime) -> None:
    plain = Pipeline("plain", steps=[orders], params={"cutoff": date(2026, 1, 1)})
    record = record_run(runtime, plain, {"cutoff": "2026-02-01"}, experiment="dev")
    found = pipelines_overview(
        runtime.metadata, "shop", {"nightly": nightly, "plain": plain}, datetime.now(UTC)
    )
    by_name = {p["name"]: p for p in found}
    assert list(by_name) == ["nightly", "plain"]
    assert by_name["plain"]["schedule"] is None
    assert by_name["plain"]["latest_run"]["run_id"] == record.run_id
    assert by_name["plain"]["latest_run"]["status"] == "queued"
    schedule = by_name["nightly"]["schedule"]
    assert schedule["status"] == "not deployed" and schedule["next_run"] is not None
    assert datetime.fromisoformat(schedule["next_run"]) > datetime.now(UTC)
    assert by_name["nightly"]["latest_run"] is None


def test_the_docstring_examples_hold() -> None:
    import doctest

    import kawa.pipelines.describe

    result = doctest.testmod(kawa.pipelines.describe)
    assert result.attempted > 0 and result.failed == 0


def test_json_values_resolve_as_their_text_would() -> None:
    # The API takes JSON: 4 for a number parameter is 4.0, as `-p scale=4` reads it (same cache key).
    by_json = nightly.resolve_params({"scale": 4})
    by_text = nightly.resolve_params({"scale": "4"})
    assert by_json["scale"] == by_text["scale"] == 4.0 and isinstance(by_json["scale"], float)
