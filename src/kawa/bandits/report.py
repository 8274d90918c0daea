"""What a bandit has learned, as plain data: per arm pulls, rewards, mean reward and the policy's score."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kawa.bandits.spec import Bandit
from kawa.bandits.store import ArmCounts, Counts


def arm_rows(bandit: Bandit, counts: Mapping[str, Counts]) -> list[dict[str, Any]]:
    """One row per declared arm (in declared order), then arms no longer declared that have counts.

    >>> b = Bandit("b", arms=["a", "b"], policy="ucb1")
    >>> [(r["arm"], r["pulls"], r["mean_reward"], r["score"]) for r in arm_rows(b, {"a": Counts(4, 1)})]
    [('a', 4, 0.25, 0.25), ('b', 0, None, None)]
    """
    pulls = [counts.get(arm, Counts()).pulls for arm in bandit.arms]
    rewards = [counts.get(arm, Counts()).rewards for arm in bandit.arms]
    scores = bandit.policy.scores(pulls, rewards)
    rows = [
        _row(arm, n, r, s, declared=True)
        for arm, n, r, s in zip(bandit.arms, pulls, rewards, scores, strict=True)
    ]
    for arm, found in counts.items():
        if arm not in bandit.arms:
            rows.append(_row(arm, found.pulls, found.rewards, None, declared=False))
    return rows


def summary(bandit: Bandit, counts: ArmCounts) -> dict[str, Any]:
    """The bandit's declaration, its arms over all contexts, and (with context) each context's arms.

    Over all contexts the score is the policy's score of the summed counts; choices are made per
    context, from that context's counts.
    """
    total: dict[str, Counts] = {}
    for per_arm in counts.values():
        for arm, found in per_arm.items():
            before = total.get(arm, Counts())
            total[arm] = Counts(before.pulls + found.pulls, before.rewards + found.rewards)
    out = {
        **bandit.describe(),
        "score_name": bandit.policy.score_name,
        "pulls": sum(c.pulls for c in total.values()),
        "rewards": sum(c.rewards for c in total.values()),
        "arms": arm_rows(bandit, total),
        "contexts": [],
    }
    if bandit.context:
        out["contexts"] = [
            {
                "context": context,
                "pulls": sum(c.pulls for c in per_arm.values()),
                "rewards": sum(c.rewards for c in per_arm.values()),
                "arms": arm_rows(bandit, per_arm),
            }
            for context, per_arm in sorted(counts.items())
        ]
    return out


def _row(arm: str, pulls: int, rewards: int, score: float | None, *, declared: bool) -> dict[str, Any]:
    return {
        "arm": arm,
        "pulls": pulls,
        "rewards": rewards,
        "mean_reward": rewards / pulls if pulls else None,
        "score": score,
        "declared": declared,
    }
