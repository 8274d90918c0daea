"""Bandits as the faces use them (choose, show), and the reward worker as a part of `kawa serve`."""

from __future__ import annotations

import random
import threading
from typing import TYPE_CHECKING, Any

from kawa.bandits.discover import DeclaredBandits
from kawa.bandits.report import summary
from kawa.bandits.rewards import CONSUMER, RewardWorker
from kawa.bandits.spec import Bandit, BanditError
from kawa.bandits.store import BanditStore, Decision

if TYPE_CHECKING:
    from kawa.config import Config
    from kawa.runtime import Runtime
    from kawa.stores.eventlog import EventLog

MAX_USER_ID_CHARS = 255
_app_lock = threading.Lock()


class BanditNotFound(LookupError):
    """No bandit of that name is declared for the project."""


class BanditService:
    """The project's declared bandits over the metadata store: choose arms, report what they learned.

    Declarations are the code of the project kawa.yaml names, read again when a file changes; other
    projects served by the same kawa have no bandits.
    """

    def __init__(self, runtime: Runtime, *, rng: random.Random | None = None) -> None:
        self.runtime = runtime
        self.config = runtime.config
        self.store = BanditStore(runtime.metadata)
        self.declared = DeclaredBandits(runtime.config)
        self.rng = rng or random.Random()

    def bandits(self, project: str) -> dict[str, Bandit]:
        return self.declared() if project == self.config.project else {}

    def get(self, project: str, name: str) -> Bandit:
        """The declared bandit, or BanditNotFound saying where bandits are declared."""
        found = self.bandits(project).get(name)
        if found is None:
            why = f" ({self.declared.error})" if self.declared.error else ""
            raise BanditNotFound(
                f"no bandit {name!r} in project {project!r}; declare it in the project's code or "
                f"bandits.yaml (docs/bandits.md){why}"
            )
        return found

    def choose(
        self,
        project: str,
        name: str,
        *,
        user_id: str | int | None = None,
        context: dict[str, Any] | None = None,
    ) -> Decision:
        """Pick an arm of bandit `name` for `user_id` in `context`, and record the decision."""
        bandit = self.get(project, name)
        user = None if user_id is None else str(user_id)
        if user is not None and not 0 < len(user) <= MAX_USER_ID_CHARS:
            raise BanditError(f"user_id must be 1-{MAX_USER_ID_CHARS} characters")
        return self.store.decide(project, bandit, bandit.context_of(context), user, self.rng)

    def show(self, project: str, name: str) -> dict[str, Any]:
        """What bandit `name` has learned (see `report.summary`)."""
        bandit = self.get(project, name)
        return summary(bandit, self.store.counts(project, name))

    def overview(self, project: str) -> dict[str, Any]:
        """Every declared bandit's summary, why declarations failed to load (if they did), and the worker."""
        return {
            "bandits": [summary(b, self.store.counts(project, n)) for n, b in self.bandits(project).items()],
            "error": self.declared.error,
            "worker": self.worker_status(),
        }

    def decisions(self, project: str, name: str, limit: int = 100) -> list[dict[str, Any]]:
        """Bandit `name`'s newest decisions, newest first."""
        self.get(project, name)
        return [d.to_json() for d in self.store.decisions(project, name, limit)]

    def worker_status(self) -> dict[str, Any]:
        """Whether `kawa serve`'s reward worker runs, and how far it has read the event log."""
        from kawa.serve.worker import part_alive

        log = self.runtime.event_log
        return {
            "running": part_alive(self.runtime.state_path, "bandits"),
            "offset": log.committed(CONSUMER),
            "end_offset": log.end_offset(),
        }


def for_app(state: Any) -> BanditService:
    """The BanditService kept on a FastAPI app's `state` (over its `runtime`), made on first use."""
    with _app_lock:
        if getattr(state, "bandits", None) is None:
            state.bandits = BanditService(state.runtime)
        service: BanditService = state.bandits
    return service


class RewardService:
    """The reward worker with the stores it runs on, for `kawa serve`'s `bandits` part."""

    def __init__(self, config: Config) -> None:
        from kawa.runtime import Runtime
        from kawa.stores.eventlog import open_event_log

        self.runtime = Runtime(config)
        self.log: EventLog = open_event_log(config.stores.event_log, self.runtime.state_path, writer=False)
        self.worker = RewardWorker(
            project=config.project,
            bandits=DeclaredBandits(config),
            event_log=self.log,
            store=BanditStore(self.runtime.metadata),
        )

    def run(self, stop: threading.Event) -> None:
        self.worker.run(stop)

    def checkpoint(self) -> None:
        self.worker.checkpoint()

    def close(self) -> None:
        self.log.close()
        self.runtime.close()
