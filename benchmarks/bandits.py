"""Bandits: cumulative regret of kawa's policies against a fixed equal split (an A/B test), simulated.

    python -m benchmarks.bandits                      # 20,000 rounds, 25 seeds, both environments
    python -m benchmarks.bandits --rounds 5000 --seeds 5            # a quick run
    python -m benchmarks.bandits --delay 2000         # rewards arrive 2,000 rounds after the choice

Environments are Bernoulli arms with known conversion rates: `ab` (0.04 vs 0.05: a two-arm test with a
50/50 split) and `abc` (0.04 / 0.05 / 0.06: the split gives each arm a third). Each round a policy
chooses an arm; the arm converts with its rate. The policies are kawa's own classes
(`kawa.bandits.policies`: the code `POST /v1/bandits/{name}/choose` runs), fed the per-arm pulls and
rewards exactly as the server's metadata store keeps them: a pull counts when the arm is chosen, its
reward when it arrives (with `--delay D`, D rounds later, as rewards attributed from later events do).

Regret is the expected (pseudo-)regret: the sum over rounds of (best rate - rate of the chosen arm),
i.e. conversions lost against always showing the best arm, without the noise of the draws. Each
policy and the split see the same arm draws per seed (a common random stream per arm). Shown: the
median over seeds, the 10th-90th percentile range, regret after the first quarter of the rounds, and
the share of all pulls that went to the best arm. Results also go to benchmarks/results/bandits-*.json.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections import deque
from datetime import datetime
from typing import Any

from benchmarks._peers_kawa import machine, median, save, table
from kawa.bandits import UCB1, EpsilonGreedy, Policy, Thompson

ENVIRONMENTS = {"ab": [0.04, 0.05], "abc": [0.04, 0.05, 0.06]}
SPLIT = "fixed equal split (A/B)"


def policies() -> dict[str, Policy | None]:
    """What is compared; None is the fixed equal split, the baseline."""
    return {
        SPLIT: None,
        "epsilon_greedy (epsilon=0.1)": EpsilonGreedy(0.1),
        "ucb1 (c=sqrt 2, classic)": UCB1(),
        "ucb1 (c=0.2)": UCB1(c=0.2),
        "thompson (Beta(1,1) prior)": Thompson(),
    }


def simulate(policy: Policy | None, rates: list[float], rounds: int, seed: int, delay: int) -> dict[str, Any]:
    """One run: regret after each round (sampled), and pulls per arm."""
    k = len(rates)
    chooser = random.Random(seed)
    # One stream of uniform draws per arm: the n-th pull of an arm converts alike under every policy.
    draws = [random.Random(seed * 1000 + arm) for arm in range(k)]
    best = max(rates)
    pulls, rewards = [0] * k, [0] * k
    pending: deque[tuple[int, int]] = deque()  # (round it arrives, arm)
    regret = 0.0
    quarter = rounds // 4
    at_quarter = 0.0
    for t in range(rounds):
        while pending and pending[0][0] <= t:
            rewards[pending.popleft()[1]] += 1
        arm = chooser.randrange(k) if policy is None else policy.choose(pulls, rewards, chooser)
        pulls[arm] += 1
        regret += best - rates[arm]
        if draws[arm].random() < rates[arm]:
            if delay:
                pending.append((t + delay, arm))
            else:
                rewards[arm] += 1
        if t + 1 == quarter:
            at_quarter = regret
    return {
        "regret": regret,
        "regret_quarter": at_quarter,
        "pulls": pulls,
        "best_share": pulls[rates.index(best)] / rounds,
    }


def percentile(values: list[float], q: float) -> float:
    return (
        float(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1])
        if len(values) > 1
        else values[0]
    )


def run(rounds: int, seeds: int, delay: int) -> dict[str, Any]:
    report: dict[str, Any] = {
        "rounds": rounds,
        "seeds": seeds,
        "delay_rounds": delay,
        "started": datetime.now().isoformat(timespec="seconds"),
        "machine": machine(),
        "environments": {},
    }
    for env, rates in ENVIRONMENTS.items():
        found: dict[str, Any] = {}
        for label, policy in policies().items():
            started = time.perf_counter()
            runs = [simulate(policy, rates, rounds, seed, delay) for seed in range(seeds)]
            regrets = [r["regret"] for r in runs]
            found[label] = {
                "regret_median": median(regrets),
                "regret_p10": percentile(regrets, 10),
                "regret_p90": percentile(regrets, 90),
                "regret_quarter_median": median([r["regret_quarter"] for r in runs]),
                "best_share_median": median([r["best_share"] for r in runs]),
                "us_per_choice": (time.perf_counter() - started) / (rounds * seeds) * 1e6,
            }
        split = found[SPLIT]["regret_median"]
        for stats in found.values():
            stats["vs_split"] = stats["regret_median"] / split if split else float("nan")
        report["environments"][env] = {"rates": rates, "policies": found}
    return report


def show(report: dict[str, Any]) -> None:
    rounds, quarter = report["rounds"], report["rounds"] // 4
    columns = [f"regret@{quarter:,}", f"regret@{rounds:,}", "p10-p90", "vs split", "best arm", "us/choice"]
    for env, found in report["environments"].items():
        rates = " / ".join(f"{r:g}" for r in found["rates"])
        print(
            f"\n{env}: arms {rates}; {report['seeds']} seeds, delay {report['delay_rounds']} rounds; medians"
        )
        rows = [
            (
                label,
                [
                    round(s["regret_quarter_median"], 1),
                    round(s["regret_median"], 1),
                    f"{s['regret_p10']:.0f}-{s['regret_p90']:.0f}",
                    f"{s['vs_split']:.2f}x",
                    f"{s['best_share_median']:.0%}",
                    round(s["us_per_choice"], 1),
                ],
            )
            for label, s in found["policies"].items()
        ]
        print(table(rows, columns))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, default=25)
    parser.add_argument("--delay", type=int, default=0, help="rounds between a choice and its reward")
    args = parser.parse_args()
    report = run(args.rounds, args.seeds, args.delay)
    show(report)
    print(f"\nsaved {save('bandits', report)}")


if __name__ == "__main__":
    main()
