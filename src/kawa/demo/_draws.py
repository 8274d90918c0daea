"""A buffered stream of random draws for the per-event simulation loops.

Calling numpy's Generator once per scalar costs about a microsecond and `choice(p=...)` tens of
microseconds; the session loops make millions of small draws, so they read from blocks drawn in bulk.
The blocks come from one numpy Generator, so the stream is fully determined by its seed.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence

import numpy as np

_BLOCK = 1 << 16


class Draws:
    """Uniform, normal and weighted draws read from blocks of a seeded numpy Generator."""

    def __init__(self, rng: np.random.Generator) -> None:
        # A generator's __next__ is the cheapest way to hand out one Python float at a time.
        self.u: Callable[[], float] = _blocks(rng.random).__next__
        """One uniform draw in [0, 1)."""
        self.normal: Callable[[], float] = _blocks(rng.standard_normal).__next__
        """One standard normal draw."""

    def chance(self, p: float) -> bool:
        """True with probability `p`."""
        return self.u() < p

    def index(self, n: int) -> int:
        """A uniform index in [0, n)."""
        return min(int(self.u() * n), n - 1)

    def pick(self, cum: Sequence[float]) -> int:
        """An index drawn with weights given as their running sum (`itertools.accumulate`)."""
        return min(bisect_right(cum, self.u() * cum[-1]), len(cum) - 1)

    def geometric(self, mean: float) -> int:
        """A count >= 0 with the given mean, geometrically distributed (how long a walk goes on)."""
        if mean <= 0:
            return 0
        p = 1.0 / (1.0 + mean)
        return int(math.log(1.0 - self.u()) / math.log(1.0 - p))

    def lognormal(self, median: float, sigma: float) -> float:
        """A positive draw with the given median: think times and dwell times."""
        return median * math.exp(sigma * self.normal())


def _blocks(draw: Callable[[int], np.ndarray]) -> Iterator[float]:
    while True:
        yield from draw(_BLOCK).tolist()
