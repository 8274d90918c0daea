"""Declaring bandits: in code or bandits.yaml, checked with errors that say what to change."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from kawa.bandits import Bandit, BanditError, DeclaredBandits, EpsilonGreedy, Thompson, load_bandits
from kawa.bandits.spec import bandits_from_yaml
from kawa.config import Config
from kawa.project_code import ProjectCodeError


def test_defaults_and_description() -> None:
    bandit = Bandit("coupon", arms=["a", "b"])
    assert bandit.policy == Thompson()
    assert bandit.window == timedelta(hours=24)
    assert bandit.reward_on.matches_all and bandit.purchase_on is None
    assert bandit.describe() == {
        "name": "coupon",
        "arms": ["a", "b"],
        "policy": {"name": "thompson", "alpha": 1.0, "beta": 1.0},
        "reward_on": {},
        "purchase_on": None,
        "user_key": "keys.user_id",
        "window_s": 86400.0,
        "context": [],
        "description": "",
    }


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "1st"}, "bandit name '1st' is not allowed"),
        ({"arms": ["only"]}, "a bandit needs 2 to 100 arms, not 1"),
        ({"arms": "ab"}, "arms must be a list of names"),
        ({"arms": ["a", "a"]}, "arm 'a' is listed twice"),
        ({"arms": ["a", ""]}, "arm '' must be a name"),
        ({"policy": "softmax"}, "bandit 'b': unknown policy 'softmax'"),
        ({"policy": {"name": "epsilon_greedy", "epsilon": -1}}, "epsilon must be a number from 0 to 1"),
        ({"window": "tomorrow"}, "window 'tomorrow' must be a positive duration"),
        ({"window": 0}, "must be a positive duration"),
        ({"purchase_on": {}}, "purchase_on matches every event; name the event"),
        ({"reward_on": {"price": {"near": 3}}}, "reward_on"),
        ({"user_key": "properties"}, "user_key"),
        ({"context": ["device", "device"]}, "context lists a key twice"),
        ({"context": ["a", "b", "c", "d", "e"]}, "at most 4 context keys"),
        ({"context": ["dev ice"]}, "context key 'dev ice' must be a plain name"),
    ],
)
def test_bad_declarations_are_refused_saying_what_to_change(options: dict[str, object], message: str) -> None:
    spec: dict[str, object] = {"name": "b", "arms": ["x", "y"], **options}
    with pytest.raises(BanditError, match=message):
        Bandit(**spec)  # type: ignore[arg-type]


def test_context_values_name_the_bandit_to_choose_in() -> None:
    bandit = Bandit("b", arms=["x", "y"], context=["device", "country"])
    assert bandit.context_of({"device": "mobile", "country": "FR"}) == "device=mobile,country=FR"
    assert bandit.context_of({"country": "FR"}) == "device=-,country=FR"
    assert bandit.context_of({"device": True, "country": 33}) == "device=true,country=33"
    assert bandit.context_of(None) == "device=-,country=-"
    with pytest.raises(BanditError, match="unknown context key 'devcie'; its keys are device, country"):
        bandit.context_of({"devcie": "mobile"})
    with pytest.raises(BanditError, match="must be a text, number or boolean"):
        bandit.context_of({"device": ["a"]})
    with pytest.raises(BanditError, match="without ',' or '='"):
        bandit.context_of({"device": "a,b"})
    with pytest.raises(BanditError, match="use a few values"):
        bandit.context_of({"device": "x" * 65})
    assert Bandit("plain", arms=["x", "y"]).context_of({}) == ""


YAML = """
bandits:
  - name: ranking
    arms: [bm25, learned]
    policy: {name: epsilon_greedy, epsilon: 0.2}
    reward_on: {event_name: click}
    purchase_on: {event_name: purchase}
    window: 2h
"""


def test_bandits_from_yaml() -> None:
    (bandit,) = bandits_from_yaml(YAML)
    assert bandit.policy == EpsilonGreedy(0.2)
    assert bandit.window == timedelta(hours=2)
    assert bandit.reward_on.test({"event_name": "click"}) and not bandit.reward_on.test(
        {"event_name": "view"}
    )
    with pytest.raises(BanditError, match=r"bandits\.yaml: bandit 'r': unknown field 'arm'; use name, arms"):
        bandits_from_yaml("bandits:\n  - {name: r, arm: [a, b]}\n")
    with pytest.raises(BanditError, match=r"bandits\.yaml: bandit 'r': arms missing"):
        bandits_from_yaml("bandits:\n  - {name: r}\n")
    with pytest.raises(BanditError, match="expected a mapping with one key, bandits"):
        bandits_from_yaml("- name: r\n")


CODE = """
from kawa.bandits import Bandit

coupon = Bandit("coupon", arms=["A", "B"], policy="ucb1")
"""


def project(tmp_path: Path, code: str = CODE, yaml: str | None = YAML) -> Config:
    (tmp_path / "features.py").write_text(code)
    if yaml is not None:
        (tmp_path / "bandits.yaml").write_text(yaml)
    return Config(root=str(tmp_path))


def test_a_project_declares_bandits_in_code_and_yaml(tmp_path: Path) -> None:
    assert list(load_bandits(project(tmp_path))) == ["coupon", "ranking"]


def test_one_name_in_code_and_yaml_is_refused(tmp_path: Path) -> None:
    config = project(tmp_path, yaml=YAML.replace("ranking", "coupon"))
    with pytest.raises(
        BanditError, match="bandit 'coupon' is also defined in the project's code; rename one"
    ):
        load_bandits(config)


def test_declarations_reload_on_change_and_keep_the_last_good_ones(tmp_path: Path) -> None:
    declared = DeclaredBandits(project(tmp_path, yaml=None))
    assert list(declared()) == ["coupon"]
    first = declared()
    assert declared() is first  # nothing changed: nothing loaded again
    code = tmp_path / "features.py"
    code.write_text(CODE + 'second = Bandit("second", arms=["x", "y"])\n')
    os.utime(code, ns=(1, 1))  # a new mtime, whatever the clock's resolution
    assert list(declared()) == ["coupon", "second"] and declared.error is None
    code.write_text("this is not python")
    os.utime(code, ns=(2, 2))
    assert list(declared()) == ["coupon", "second"]
    assert declared.error is not None and "features.py:1" in declared.error
    with pytest.raises(ProjectCodeError):
        load_bandits(declared.config)


def test_kawa_bandits_show_prints_arms_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from kawa.cli import app
    from kawa.cli.project import init_project

    config_path, _ = init_project(tmp_path, "shop")
    (tmp_path / "bandits.yaml").write_text(
        "bandits:\n  - name: ranking\n    arms: ['[new] ranker', 'a[/b]']\n"
    )
    monkeypatch.setenv("KAWA_CONFIG", str(config_path))
    shown = CliRunner().invoke(app, ["bandits", "show"])
    assert shown.exit_code == 0, shown.output  # "a[/b]" read as markup made rich raise
    assert "[new] ranker" in shown.output and "a[/b]" in shown.output
