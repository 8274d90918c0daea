"""Bandits: choose an arm per request, learn from rewards found in the event stream.

>>> ranking = Bandit(
...     "search_ranking",
...     arms=["bm25", "learned"],
...     policy=EpsilonGreedy(epsilon=0.1),
...     reward_on={"event_name": "click"},
...     purchase_on={"event_name": "purchase"},
...     window="24h",
... )
>>> ranking.describe()["policy"]
{'name': 'epsilon_greedy', 'epsilon': 0.1}
"""

from __future__ import annotations

from kawa.bandits.discover import YAML_NAME, DeclaredBandits, load_bandits
from kawa.bandits.policies import (
    POLICIES,
    UCB1,
    EpsilonGreedy,
    Policy,
    PolicyError,
    Thompson,
    policy_from_spec,
)
from kawa.bandits.spec import Bandit, BanditError, bandits_from_yaml

__all__ = [
    "POLICIES",
    "UCB1",
    "YAML_NAME",
    "Bandit",
    "BanditError",
    "DeclaredBandits",
    "EpsilonGreedy",
    "Policy",
    "PolicyError",
    "Thompson",
    "bandits_from_yaml",
    "load_bandits",
    "policy_from_spec",
]
