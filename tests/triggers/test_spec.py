"""Trigger declarations: checks at definition, YAML, and discovery in a project's files."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from kawa.config import load_config
from kawa.features import USER, Entity, FeatureView, agg
from kawa.streaming import StreamView, stream
from kawa.triggers import Trigger, TriggerError, load_triggers, triggers_from_yaml

BASE = {"on": {"event_name": "view"}, "key": "keys.session_id", "model": "intent"}


def test_a_trigger_describes_itself_and_reads_its_key() -> None:
    t = Trigger("intent", **BASE, alias="staging", webhook="https://hooks.example/x", emit="intent_scored")
    assert t.describe() == {
        "name": "intent",
        "on": {"event_name": "view"},
        "key": "keys.session_id",
        "model": "intent",
        "alias": "staging",
        "features": [],
        "batch_features": [],
        "webhook": "https://hooks.example/x",
        "emit": "intent_scored",
        "description": "",
    }
    assert t.key_of({"keys": {"session_id": 12}}) == "12"
    assert t.key_of({"keys": {"session_id": ""}}) is None
    assert t.key_of({"keys": {}}) is None
    assert t.match.test({"event_name": "view"}) and not t.match.test({"event_name": "buy"})


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"name": "no spaces"}, "trigger name"),
        ({"on": {}}, "matches every event"),
        ({"on": {"price": {"near": 3}}}, "unknown operator 'near'"),
        ({"key": "keys..x"}, "not a plain name"),
        ({"model": "bad name"}, "model 'bad name'"),
        ({"alias": "Prod"}, "alias"),
        ({"webhook": "ftp://x"}, "http:// or https://"),
        ({"emit": "view"}, "its own emitted"),
        ({"emit": "has space"}, "event name"),
        ({"features": ["not a view"]}, "StreamViews"),
        ({"batch_features": [object()]}, "FeatureViews"),
    ],
)
def test_bad_declarations_are_refused_naming_what_to_change(change: dict[str, object], words: str) -> None:
    args = {"name": "t", **BASE, **change}
    with pytest.raises(TriggerError, match=words):
        Trigger(**args)  # type: ignore[arg-type]


def test_batch_views_must_be_keyed_by_an_event_field() -> None:
    by_sql = FeatureView("odd", Entity("odd", "lower(keys.user_id)"), {"n": agg.count()})
    with pytest.raises(TriggerError, match="keyed by the SQL"):
        Trigger("t", **BASE, batch_features=[by_sql])
    ok = FeatureView("buyers", USER, {"n": agg.count()})
    assert Trigger("t", **BASE, batch_features=[ok]).describe()["batch_features"] == ["buyers"]
    with pytest.raises(TriggerError, match="twice"):
        Trigger("t", **BASE, batch_features=[ok, ok])


VIEWS = {"activity": StreamView("activity", key="keys.session_id", features={"n": stream.count(window="5m")})}


def test_yaml_declares_triggers_naming_views_of_the_code() -> None:
    text = """
    triggers:
      - name: intent
        on: {event_name: view, page: {glob: "https://shop.example/items/*"}}
        key: keys.session_id
        model: purchase_intent
        features: [activity]
        emit: intent_scored
    """
    (t,) = triggers_from_yaml(textwrap.dedent(text), stream_views=VIEWS)
    assert t.features == (VIEWS["activity"],)
    assert t.match.test({"event_name": "view", "page": "https://shop.example/items/i_1"})
    assert not t.match.test({"event_name": "view", "page": "https://shop.example/cart"})


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("triggers: {}", "a list of triggers"),
        ("other: []", "a list of triggers"),
        ("triggers: [{name: t, key: k, model: m}]", "on missing"),
        ("triggers: [{name: t, on: {event_name: v}, key: k, model: m, colour: red}]", "field 'colour'"),
        ("triggers: [{name: t, on: {event_name: v}, key: k, model: m, features: [gone]}]", "no stream view"),
        ("triggers: [", "not valid YAML"),
    ],
)
def test_bad_yaml_is_refused_naming_the_problem(text: str, words: str) -> None:
    with pytest.raises(TriggerError, match=words):
        triggers_from_yaml(text, stream_views=VIEWS)


def test_triggers_are_found_in_project_code_and_triggers_yaml(tmp_path: Path) -> None:
    (tmp_path / "kawa.yaml").write_text("project: shop\ncode: [features.py]\n")
    (tmp_path / "features.py").write_text(
        textwrap.dedent(
            """
            from kawa.streaming import StreamView, stream
            from kawa.triggers import Trigger

            counts = {"n": stream.count(window="5m")}
            activity = StreamView("activity", key="keys.session_id", features=counts)
            from_code = Trigger("from_code", on={"event_name": "view"}, key="keys.user_id", model="m")
            """
        )
    )
    config = load_config(tmp_path / "kawa.yaml")
    assert list(load_triggers(config)) == ["from_code"]
    (tmp_path / "triggers.yaml").write_text(
        "triggers:\n  - {name: from_yaml, on: {event_name: cart_add}, key: keys.user_id, model: m,"
        " features: [activity]}\n"
    )
    found = load_triggers(config)
    assert list(found) == ["from_code", "from_yaml"]
    assert found["from_yaml"].features[0].name == "activity"
    (tmp_path / "triggers.yaml").write_text(
        "triggers:\n  - {name: from_code, on: {event_name: x}, key: keys.user_id, model: m}\n"
    )
    with pytest.raises(TriggerError, match="also defined in the project's code"):
        load_triggers(config)
