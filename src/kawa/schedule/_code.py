"""The project's pipelines for a long-running scheduler: loaded again when a code file changes."""

from __future__ import annotations

import logging
from pathlib import Path
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

    def _files(self) -> tuple[tuple[str, int, int], ...]:
        root = Path(self.config.root)
        out = []
        for name in self.config.code:
            path = Path(name) if Path(name).is_absolute() else root / name
            try:
                stat = path.stat()
            except OSError:
                continue
            out.append((str(path), stat.st_mtime_ns, stat.st_size))
        return tuple(out)

    def __call__(self) -> dict[str, Pipeline] | None:
        """The pipelines (the same dict until the code changes); None if the code never loaded."""
        from kawa.pipelines import PipelineDefinitionError, project_pipelines
        from kawa.project_code import ProjectCodeError
        from kawa.schedule.spec import ScheduleError

        signature = self._files()
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
