"""Defining steps and pipelines: order from parameter names, definition errors, parameters."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from kawa.pipelines import (
    ParamError,
    Pipeline,
    PipelineDefinitionError,
    RunContext,
    Step,
    StepDefinitionError,
    parse_assignments,
    step,
)


@step
def raw(cutoff: date) -> list[int]:
    return [1, 2, 3]


@step
def cleaned(raw: list[int]) -> list[int]:
    return raw


@step
def features(cleaned: list[int], raw: list[int]) -> int:
    return len(cleaned) + len(raw)


@step(cpus=2, memory="8GB", gpu=1)
def model(features: int, ctx: RunContext, trees: int = 100) -> int:
    return features * trees


def test_steps_run_in_the_order_their_parameter_names_demand() -> None:
    p = Pipeline("loyalty", steps=[model, features, cleaned, raw], params={"cutoff": date(2026, 10, 1)})
    assert [s.name for s in p.steps] == ["raw", "cleaned", "features", "model"]


def test_independent_steps_keep_the_order_they_were_given_in() -> None:
    @step
    def a() -> int:
        return 1

    @step
    def b() -> int:
        return 2

    @step
    def c(b: int, a: int) -> int:
        return a + b

    assert [s.name for s in Pipeline("p", steps=[c, b, a]).steps] == ["b", "a", "c"]
    assert [s.name for s in Pipeline("p", steps=[a, c, b]).steps] == ["a", "b", "c"]


def test_a_step_knows_its_inputs_context_and_resources() -> None:
    assert isinstance(model, Step)
    assert model.inputs == ("features", "trees")
    assert model.context_param == "ctx"
    assert model.defaults == {"trees": 100}
    assert model.resources == {"cpus": 2, "memory": "8GB", "gpu": 1}
    assert model(features=3, ctx=None, trees=2) == 6  # still a plain function


def test_plain_functions_become_steps() -> None:
    def total(numbers: list[int]) -> int:
        return sum(numbers)

    def numbers() -> list[int]:
        return [1]

    p = Pipeline("p", steps=[total, numbers])
    assert [s.name for s in p.steps] == ["numbers", "total"]


def test_a_cycle_is_refused_naming_its_steps() -> None:
    @step
    def x(z: int) -> int:
        return z

    @step
    def y(x: int) -> int:
        return x

    @step
    def z(y: int) -> int:
        return y

    @step
    def start() -> int:
        return 0

    with pytest.raises(PipelineDefinitionError, match="form a cycle") as info:
        Pipeline("loop", steps=[start, x, y, z])
    assert all(name in str(info.value) for name in ("x", "y", "z"))
    assert "start" not in str(info.value).split("steps", 1)[1].split("form")[0]


def test_a_missing_input_is_refused_naming_it_and_what_exists() -> None:
    with pytest.raises(PipelineDefinitionError, match="'cleaned' takes 'raw'") as info:
        Pipeline("p", steps=[cleaned], params={"cutoff": "2026-10-01"})
    assert "cutoff" in str(info.value)


def test_a_parameter_named_like_a_step_or_twice_named_steps_are_refused() -> None:
    with pytest.raises(PipelineDefinitionError, match="name of a parameter"):
        Pipeline("p", steps=[raw], params={"raw": 1, "cutoff": "x"})

    def raw_again() -> int:
        return 0

    raw_again.__name__ = "raw"
    with pytest.raises(PipelineDefinitionError, match="two steps called 'raw'"):
        Pipeline("p", steps=[raw, raw_again], params={"cutoff": "x"})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"cpus": 0}, "cpus"), ({"memory": "lots"}, "memory"), ({"gpu": -1}, "gpu"), ({"gpu": True}, "gpu")],
)
def test_malformed_resource_hints_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(StepDefinitionError, match=message):

        @step(**kwargs)
        def anything() -> None:
            pass


def test_steps_take_inputs_by_name_only() -> None:
    def spread(*rows: int) -> int:
        return len(rows)

    with pytest.raises(StepDefinitionError, match="matched by name"):
        step(spread)


def test_bad_pipeline_names_and_empty_pipelines_are_refused() -> None:
    with pytest.raises(PipelineDefinitionError, match="pipeline name"):
        Pipeline("no spaces", steps=[raw], params={"cutoff": "x"})
    with pytest.raises(PipelineDefinitionError, match="no steps"):
        Pipeline("empty", steps=[])


# -- parameters ---------------------------------------------------------------------------------------

DEFAULTS = {
    "cutoff": date(2026, 10, 1),
    "since": datetime(2026, 1, 1, tzinfo=UTC),
    "trees": 100,
    "rate": 0.1,
    "balanced": False,
    "note": "hello",
    "columns": ["a", "b"],
}


def _pipeline() -> Pipeline:
    @step
    def use(cutoff: date, since: datetime, trees: int, rate: float, balanced: bool, note: str) -> None:
        pass

    return Pipeline("params", steps=[use], params=DEFAULTS)


def test_defaults_apply_when_nothing_is_overridden() -> None:
    assert _pipeline().resolve_params() == DEFAULTS
    assert _pipeline().resolve_params({}) == DEFAULTS


def test_overrides_given_as_text_are_parsed_by_the_defaults_type() -> None:
    values = _pipeline().resolve_params(
        {
            "cutoff": "2026-11-15",
            "since": "2026-02-01T10:00:00",
            "trees": "300",
            "rate": "0.5",
            "balanced": "yes",
            "note": "2026-01-01",
            "columns": '["x"]',
        }
    )
    assert values == {
        "cutoff": date(2026, 11, 15),
        "since": datetime(2026, 2, 1, 10, tzinfo=UTC),
        "trees": 300,
        "rate": 0.5,
        "balanced": True,
        "note": "2026-01-01",
        "columns": ["x"],
    }


def test_only_the_overridden_parameters_change() -> None:
    values = _pipeline().resolve_params({"trees": 7})
    assert values == {**DEFAULTS, "trees": 7}


@pytest.mark.parametrize(
    ("name", "text"),
    [("cutoff", "01/10/2026"), ("trees", "1.5"), ("rate", "fast"), ("balanced", "maybe"), ("columns", "{}")],
)
def test_malformed_values_are_refused_naming_the_parameter_and_type(name: str, text: str) -> None:
    with pytest.raises(ParamError, match=f"parameter '{name}' takes a") as info:
        _pipeline().resolve_params({name: text})
    assert repr(text) in str(info.value)


def test_values_of_the_wrong_type_are_refused() -> None:
    with pytest.raises(ParamError, match="'trees' takes a whole number"):
        _pipeline().resolve_params({"trees": 1.5})
    with pytest.raises(ParamError, match="'balanced'"):
        _pipeline().resolve_params({"balanced": 1})


def test_unknown_parameters_are_refused_listing_the_known_ones() -> None:
    with pytest.raises(ParamError, match="no parameter 'treez'") as info:
        _pipeline().resolve_params({"treez": "3"})
    message = str(info.value)
    assert all(f"{name}=" in message for name in DEFAULTS)
    assert "cutoff=2026-10-01," in message and "balanced=false," in message and "trees=100," in message


def test_assignments_parse_name_equals_value() -> None:
    assert parse_assignments(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(ParamError, match="name=value"):
        parse_assignments(["cutoff"])
    with pytest.raises(ParamError, match="twice"):
        parse_assignments(["a=1", "a=2"])
