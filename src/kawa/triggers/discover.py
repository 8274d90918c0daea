"""Finding a project's triggers: `Trigger` objects in its code files, and `triggers.yaml` beside kawa.yaml."""

from __future__ import annotations

from pathlib import Path

from kawa.config import Config
from kawa.triggers.spec import Trigger, TriggerError, triggers_from_yaml

YAML_NAME = "triggers.yaml"


def load_triggers(config: Config) -> dict[str, Trigger]:
    """The project's triggers by name, from its code (`code` in kawa.yaml) and `triggers.yaml`.

    Triggers in YAML name their stream views and feature views, which the code defines. Two triggers
    with one name are refused. Raises ProjectCodeError or TriggerError, naming the file.
    """
    from kawa.project_code import load

    found = load(config)
    triggers: dict[str, Trigger] = dict(found.get("trigger", {}))  # type: ignore[arg-type]
    path = Path(config.root) / YAML_NAME
    if path.is_file():
        for trigger in triggers_from_yaml(
            path,
            stream_views=found.get("stream_view", {}),  # type: ignore[arg-type]
            feature_views=found.get("feature_view", {}),  # type: ignore[arg-type]
        ):
            if trigger.name in triggers:
                raise TriggerError(
                    f"{path}: trigger {trigger.name!r} is also defined in the project's code; rename one"
                )
            triggers[trigger.name] = trigger
    return dict(sorted(triggers.items()))
