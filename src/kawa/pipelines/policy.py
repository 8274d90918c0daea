"""The run policy of a step: timeout, retries and backoff, from kawa's defaults, the pipeline and the step.

kawa's defaults, which every pipeline gets unless it or its step says otherwise:

- timeout_s: 4 hours per attempt of a step; the subprocess executor stops a step that runs longer
  and records it as `timeout`.
- retries: 2 for runs nobody is watching (scheduled and backfill runs), 0 for manual and test runs,
  whose user sees the failure at once; a pipeline or step that sets `retries` sets it for every kind.
- retry_backoff_s: 60 s before the first retry, doubling before each next one.
- max_active_runs (a pipeline setting, see `Pipeline`): 1 run at a time, of every kind; a manual
  start beyond it is refused unless forced, a due scheduled run waits (see `kawa.pipelines.active`).

A status message is sent at the end of every run, whatever its kind and ending.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kawa.pipelines.pipeline import Pipeline
    from kawa.pipelines.step import Step

DEFAULT_TIMEOUT_S = 4 * 3600.0
DEFAULT_RETRIES_UNATTENDED = 2
DEFAULT_RETRY_BACKOFF_S = 60.0
UNATTENDED_KINDS = frozenset({"scheduled", "backfill"})


@dataclass(frozen=True)
class RunPolicy:
    """How one step of one run is run."""

    timeout_s: float = DEFAULT_TIMEOUT_S
    retries: int = 0
    retry_backoff_s: float = DEFAULT_RETRY_BACKOFF_S

    @property
    def attempts(self) -> int:
        """How many times the step may start: the first attempt plus its retries."""
        return 1 + self.retries

    def backoff_s(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based) before the next.

        >>> [RunPolicy(retry_backoff_s=60).backoff_s(n) for n in (1, 2, 3)]
        [60.0, 120.0, 240.0]
        """
        return self.retry_backoff_s * 2 ** (attempt - 1)


def policy_for(pipeline: Pipeline, step: Step, kind: str) -> RunPolicy:
    """The policy of `step` in a run of `kind`: the step's settings over the pipeline's over kawa's."""
    retries = DEFAULT_RETRIES_UNATTENDED if kind in UNATTENDED_KINDS else 0
    settings: dict[str, Any] = {"retries": retries}
    settings.update(getattr(pipeline, "policy", None) or {})
    settings.update(step.policy)
    return RunPolicy(**settings)
