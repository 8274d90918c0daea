"""Each policy finds the best arm of a simulated Bernoulli environment, and says why in its scores."""

from __future__ import annotations

import random

import pytest

from kawa.bandits import UCB1, EpsilonGreedy, Policy, PolicyError, Thompson, policy_from_spec

RATES = [0.2, 0.3, 0.5]  # the best arm is index 2


def play(policy: Policy, rounds: int, seed: int) -> tuple[list[int], list[int], list[int]]:
    """Pulls and rewards per arm after `rounds`, and the arm chosen each round."""
    rng = random.Random(seed)
    world = random.Random(seed + 1)
    pulls, rewards, chosen = [0] * len(RATES), [0] * len(RATES), []
    for _ in range(rounds):
        arm = policy.choose(pulls, rewards, rng)
        pulls[arm] += 1
        rewards[arm] += world.random() < RATES[arm]
        chosen.append(arm)
    return pulls, rewards, chosen


@pytest.mark.parametrize("policy", [EpsilonGreedy(0.1), UCB1(), Thompson()], ids=lambda p: p.name)
def test_each_policy_converges_to_the_best_arm(policy: Policy) -> None:
    pulls, rewards, chosen = play(policy, 3000, seed=7)
    assert max(range(len(RATES)), key=lambda i: pulls[i]) == 2
    late = chosen[-1000:]
    assert late.count(2) / len(late) > 0.7, (pulls, rewards)
    # Every arm was tried: none is written off without evidence.
    assert min(pulls) > 0


def test_a_fixed_split_is_what_the_policies_beat() -> None:
    """Uniform random choice (an A/B/C test) plays the best arm only a third of the time."""
    pulls, _, _ = play(EpsilonGreedy(1.0), 3000, seed=7)
    assert all(800 < n < 1200 for n in pulls)


def test_ucb1_plays_every_arm_once_before_comparing() -> None:
    policy, rng = UCB1(), random.Random(0)
    pulls, rewards = [0, 0, 0], [0, 0, 0]
    first = []
    for _ in range(3):
        arm = policy.choose(pulls, rewards, rng)
        first.append(arm)
        pulls[arm] += 1
    assert sorted(first) == [0, 1, 2]


def test_epsilon_zero_is_greedy_and_breaks_ties_at_random() -> None:
    policy = EpsilonGreedy(0.0)
    rng = random.Random(3)
    assert {policy.choose([10, 10], [1, 5], rng) for _ in range(50)} == {1}
    assert {policy.choose([10, 10], [5, 5], rng) for _ in range(50)} == {0, 1}


def test_scores_explain_the_choice() -> None:
    assert EpsilonGreedy().scores([0, 4], [0, 1]) == [None, 0.25]
    assert UCB1().scores([0, 4], [0, 1]) == [None, 0.25]  # an untried arm has no bound yet
    bounds = UCB1(c=0).scores([10, 10], [2, 5])
    assert bounds == [0.2, 0.5]
    best = Thompson().scores([500, 500, 500], [20, 25, 60])
    assert best[2] > 0.99 and abs(sum(best) - 1) < 1e-9  # type: ignore[arg-type]
    assert Thompson().scores([0, 0], [0, 0]) == pytest.approx([0.5, 0.5], abs=0.05)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("greedy", "unknown policy 'greedy'; use one of epsilon_greedy, ucb1, thompson"),
        ({"name": "epsilon_greedy", "epsilon": 1.5}, "epsilon must be a number from 0 to 1"),
        ({"name": "ucb1", "alpha": 1}, "ucb1: unknown parameter in ['alpha']; its parameters are c"),
        ({"name": "thompson", "alpha": 0}, "alpha must be a positive number"),
        ({"epsilon": 0.1}, "a policy is a name"),
    ],
)
def test_bad_policies_are_refused_saying_what_to_use(spec: object, message: str) -> None:
    with pytest.raises(PolicyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        policy_from_spec(spec)  # type: ignore[arg-type]


def test_policies_from_specs_equal_the_objects() -> None:
    assert policy_from_spec({"name": "thompson", "alpha": 2}) == Thompson(alpha=2)
    assert policy_from_spec("ucb1") == UCB1()
    assert policy_from_spec({"name": "epsilon_greedy", "epsilon": 0.2}) != EpsilonGreedy(0.1)
