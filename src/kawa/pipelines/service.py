"""The project's pipelines as a long-running server sees them: listed, described, started and rerun.

The server loads the project's code the way the scheduler does (again after an edit; the last good
load while a file does not import) and starts runs in processes of their own (`BackgroundRuns`).
`GET /v1/pipelines`, `POST /v1/pipelines/{name}/runs` and the UI's pipelines and run pages all go
through one `PipelineService`, kept on the app (`PipelineService.attached`).
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kawa.pipelines.background import BackgroundRuns
from kawa.pipelines.describe import pipelines_overview
from kawa.pipelines.runs import RunRecord, RunStore

if TYPE_CHECKING:
    from kawa.pipelines.pipeline import Pipeline
    from kawa.runtime import Runtime

_attach_lock = threading.Lock()


class CodeUnavailable(RuntimeError):
    """The project's code has never loaded in this server, so it knows no pipelines; says why."""


class PipelineService:
    """Lists, describes and starts the project's pipelines for the API and the UI."""

    def __init__(self, runtime: Runtime) -> None:
        from kawa.schedule._code import ProjectPipelines

        self.runtime = runtime
        self.code = ProjectPipelines(runtime.config)
        self.background = BackgroundRuns(runtime.config)
        self._lock = threading.Lock()

    @classmethod
    def attached(cls, app: Any) -> PipelineService:
        """The service kept on `app.state`, made on first use; its runs are stopped when the process exits."""
        found = getattr(app.state, "pipeline_service", None)
        if found is None:
            with _attach_lock:
                found = getattr(app.state, "pipeline_service", None)
                if found is None:
                    found = cls(app.state.runtime)
                    atexit.register(found.close)
                    app.state.pipeline_service = found
        assert isinstance(found, PipelineService)
        return found

    def pipelines(self) -> dict[str, Pipeline]:
        """The project's pipelines by name; CodeUnavailable when its code never loaded."""
        with self._lock:  # loading imports the project's files: one thread at a time
            found = self.code()
        if found is None:
            raise CodeUnavailable(
                f"the project's code does not load, so its pipelines are unknown: {self.code.error}; "
                "fix the file and reload the page"
            )
        return found

    @property
    def code_error(self) -> str | None:
        """Why the latest edit of the code does not load (the last good load is still served)."""
        return self.code.error

    def pipeline(self, name: str) -> Pipeline:
        """The pipeline called `name`; LookupError listing the known ones."""
        found = self.pipelines()
        if name not in found:
            raise LookupError(f"no pipeline named {name!r}; pipelines: {', '.join(sorted(found)) or 'none'}")
        return found[name]

    def overview(self, project: str) -> list[dict[str, Any]]:
        """Every pipeline with its steps, parameters, schedule and latest run (`pipelines_overview`)."""
        return pipelines_overview(self.runtime.metadata, project, self.pipelines(), datetime.now(UTC))

    def describe(self, project: str, name: str) -> dict[str, Any]:
        """One pipeline as `overview` shows it; LookupError if there is none of that name."""
        pipeline = self.pipeline(name)
        found = pipelines_overview(self.runtime.metadata, project, {name: pipeline}, datetime.now(UTC))
        return found[0]

    def start(
        self,
        project: str,
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        experiment: str = "default",
        force: bool = False,
    ) -> RunRecord:
        """Record a manual run and start it in a process of its own; the queued record comes back at once.

        Parameters are checked as `kawa pipeline run -p` checks them: text is parsed by the default's
        type, other JSON values must fit it (ParamError otherwise, and nothing is recorded). While the
        pipeline runs `max_active_runs` runs, RunLimitReached refuses it unless `force`.
        """
        pipeline = self.pipeline(name)
        return self.background.start(
            self.runtime, pipeline, params, experiment=experiment, project=project, force=force
        )

    def rerun(self, project: str, run_id: str, *, force: bool = False) -> RunRecord:
        """Start a new run with the pipeline, parameters and experiment of run `run_id` of `project`."""
        store = RunStore(self.runtime.metadata)
        earlier = store.get(store.resolve(run_id, project))
        assert earlier is not None
        return self.background.rerun(self.runtime, self.pipeline(earlier.pipeline), earlier, force=force)

    def close(self) -> None:
        self.background.close()
