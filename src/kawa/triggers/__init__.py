"""Triggers: real-time predictions for the events that matter, scored behind the event log.

>>> trigger = Trigger("intent", on={"event_name": "view"}, key="keys.session_id", model="purchase_intent")
>>> trigger.describe()["on"]
{'event_name': 'view'}
"""

from __future__ import annotations

from kawa.triggers.discover import YAML_NAME, load_triggers
from kawa.triggers.spec import Trigger, TriggerError, triggers_from_yaml

__all__ = ["YAML_NAME", "Trigger", "TriggerError", "load_triggers", "triggers_from_yaml"]
