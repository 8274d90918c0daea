"""Bandit policies: which arm to play next, given each arm's pulls and rewards so far.

A policy only stores its parameters; the statistics are passed in (`pulls[i]`, `rewards[i]` for arm
`i`), so one policy object serves every bandit, context and process, and the simulation benchmark
runs exactly the code the server runs. Rewards are 0/1 (a conversion), so a mean is a rate.

>>> import random
>>> Thompson().choose([100, 100], [2, 30], random.Random(0))
1
>>> UCB1().choose([10, 0, 10], [1, 0, 5], random.Random(0))  # an arm never played goes first
1
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np


class PolicyError(ValueError):
    """A policy's name or parameters are not valid; the message says what to use."""


class Policy(ABC):
    """Chooses an arm index from per-arm counts; `scores` explains the choice for people."""

    name: ClassVar[str]
    # What `scores` returns, as a column title ("mean", "upper bound", "P(best)").
    score_name: ClassVar[str]

    @abstractmethod
    def choose(self, pulls: Sequence[int], rewards: Sequence[int], rng: random.Random) -> int:
        """The index of the arm to play next."""

    @abstractmethod
    def scores(self, pulls: Sequence[int], rewards: Sequence[int]) -> list[float | None]:
        """Each arm's current score (None where there is none yet, e.g. an arm never played)."""

    @abstractmethod
    def params(self) -> dict[str, float]:
        """The parameters, as declared."""

    def describe(self) -> dict[str, Any]:
        """The policy as JSON: `{"name": ..., **params}`."""
        return {"name": self.name, **self.params()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.params() == self.params()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((self.name, tuple(self.params().items())))


def _means(pulls: Sequence[int], rewards: Sequence[int]) -> list[float]:
    return [r / n if n else 0.0 for n, r in zip(pulls, rewards, strict=True)]


def _argmax(values: Sequence[float], rng: random.Random) -> int:
    """The index of the largest value; ties are broken at random, so equal arms share the traffic."""
    best = max(values)
    ties = [i for i, v in enumerate(values) if v == best]
    return ties[0] if len(ties) == 1 else rng.choice(ties)


class EpsilonGreedy(Policy):
    """Play the arm with the best mean reward; with probability `epsilon`, a uniformly random arm.

    >>> EpsilonGreedy(0.1).scores([10, 20], [1, 5])
    [0.1, 0.25]
    """

    name = "epsilon_greedy"
    score_name = "mean"

    def __init__(self, epsilon: float = 0.1) -> None:
        if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or not 0 <= epsilon <= 1:
            raise PolicyError(f"epsilon_greedy: epsilon must be a number from 0 to 1, not {epsilon!r}")
        self.epsilon = float(epsilon)

    def choose(self, pulls: Sequence[int], rewards: Sequence[int], rng: random.Random) -> int:
        if rng.random() < self.epsilon:
            return rng.randrange(len(pulls))
        return _argmax(_means(pulls, rewards), rng)

    def scores(self, pulls: Sequence[int], rewards: Sequence[int]) -> list[float | None]:
        return [r / n if n else None for n, r in zip(pulls, rewards, strict=True)]

    def params(self) -> dict[str, float]:
        return {"epsilon": self.epsilon}


class UCB1(Policy):
    """Play each arm once, then the arm with the highest upper confidence bound
    mean + c * sqrt(ln(total pulls) / pulls); c = sqrt(2) is Auer et al.'s UCB1.

    >>> [round(s, 3) for s in UCB1().scores([10, 40], [1, 8])]
    [0.985, 0.642]
    """

    name = "ucb1"
    score_name = "upper bound"

    def __init__(self, c: float = math.sqrt(2)) -> None:
        if isinstance(c, bool) or not isinstance(c, int | float) or not 0 <= c < math.inf:
            raise PolicyError(f"ucb1: c must be a non-negative number, not {c!r}")
        self.c = float(c)

    def choose(self, pulls: Sequence[int], rewards: Sequence[int], rng: random.Random) -> int:
        untried = [i for i, n in enumerate(pulls) if n == 0]
        if untried:
            return untried[0] if len(untried) == 1 else rng.choice(untried)
        return _argmax(self._bounds(pulls, rewards), rng)

    def scores(self, pulls: Sequence[int], rewards: Sequence[int]) -> list[float | None]:
        if any(n == 0 for n in pulls):
            return [None if n == 0 else r / n for n, r in zip(pulls, rewards, strict=True)]
        return list(self._bounds(pulls, rewards))

    def _bounds(self, pulls: Sequence[int], rewards: Sequence[int]) -> list[float]:
        log_total = math.log(sum(pulls))
        return [r / n + self.c * math.sqrt(log_total / n) for n, r in zip(pulls, rewards, strict=True)]

    def params(self) -> dict[str, float]:
        return {"c": self.c}


class Thompson(Policy):
    """Thompson sampling with a Beta(alpha, beta) prior on each arm's reward rate: play the arm whose
    draw from its posterior Beta(alpha + rewards, beta + failures) is highest.

    Its score is the probability that the arm is the best one, which is also how often Thompson
    sampling plays it now.

    >>> Thompson().scores([1000, 1000], [10, 90])
    [0.0, 1.0]
    """

    name = "thompson"
    score_name = "P(best)"
    SCORE_DRAWS = 4000

    def __init__(self, alpha: float = 1.0, beta: float = 1.0) -> None:
        for label, value in (("alpha", alpha), ("beta", beta)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
                raise PolicyError(f"thompson: {label} must be a positive number, not {value!r}")
        self.alpha = float(alpha)
        self.beta = float(beta)

    def choose(self, pulls: Sequence[int], rewards: Sequence[int], rng: random.Random) -> int:
        a, b = self.alpha, self.beta
        draws = [rng.betavariate(a + r, b + n - r) for n, r in zip(pulls, rewards, strict=True)]
        return _argmax(draws, rng)

    def scores(self, pulls: Sequence[int], rewards: Sequence[int]) -> list[float | None]:
        n = np.asarray(pulls, dtype=float)
        r = np.asarray(rewards, dtype=float)
        # A fixed seed: the same counts always show the same estimate.
        draws = np.random.default_rng(0).beta(
            self.alpha + r, self.beta + n - r, size=(self.SCORE_DRAWS, len(n))
        )
        wins = np.bincount(draws.argmax(axis=1), minlength=len(n))
        return [float(w) / self.SCORE_DRAWS for w in wins]

    def params(self) -> dict[str, float]:
        return {"alpha": self.alpha, "beta": self.beta}


POLICIES: dict[str, type[Policy]] = {p.name: p for p in (EpsilonGreedy, UCB1, Thompson)}


def policy_from_spec(spec: str | Mapping[str, Any] | Policy) -> Policy:
    """A policy from its name, a mapping `{"name": ..., **params}`, or a Policy (returned as is).

    >>> policy_from_spec({"name": "epsilon_greedy", "epsilon": 0.2})
    EpsilonGreedy(epsilon=0.2)
    """
    if isinstance(spec, Policy):
        return spec
    names = ", ".join(POLICIES)
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise PolicyError(
            f"a policy is a name ({names}) or a mapping with a name and parameters, not {spec!r}"
        )
    params = {k: v for k, v in spec.items() if k != "name"}
    cls = POLICIES.get(spec["name"])
    if cls is None:
        raise PolicyError(f"unknown policy {spec['name']!r}; use one of {names}")
    try:
        return cls(**params)
    except TypeError:
        allowed = ", ".join(cls().params()) or "none"
        raise PolicyError(
            f"{cls.name}: unknown parameter in {sorted(params)}; its parameters are {allowed}"
        ) from None
