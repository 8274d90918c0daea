"""The project's pipelines for a long-running scheduler: loaded again when a code file changes."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kawa.config import Config
    from kawa.pipelines import Pipeline

log = logging.getLogger("kawa.schedule")


class ProjectPipelines:
    """Calling it returns the project's pipelines, reloading them after an edit to a code file.

    A file that fails to import keeps the pipelines of the last good load (and logs why once), so a
    half-saved edit never makes the scheduler believe every schedule was removed.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._signature: tuple[tuple[str, int, int], ...] | None = None
        self._pipelines: dict[str, Pipeline] | None = None
        self.error: str | None = None

    def __call__(self) -> dict[str, Pipeline] | None:
        """The pipelines (the same dict until the code changes); None if the code never loaded."""
        from kawa.pipelines import PipelineDefinitionError, project_pipelines
        from kawa.project_code import ProjectCodeError, files_signature
        from kawa.schedule.spec import ScheduleError

        signature = files_signature(self.config)
        if signature == self._signature:
            return self._pipelines
        self._signature = signature
        try:
            self._pipelines = project_pipelines(self.config)
            self.error = None
        except (ProjectCodeError, PipelineDefinitionError, ScheduleError) as exc:
            self.error = str(exc)
            log.error("cannot load the project's pipelines, keeping the last good ones: %s", exc)
        return self._pipelines
