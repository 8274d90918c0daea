"""Finding a project's bandits: `Bandit` objects in its code files, and `bandits.yaml` beside kawa.yaml."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from kawa.bandits.spec import Bandit, BanditError, bandits_from_yaml
from kawa.config import Config

YAML_NAME = "bandits.yaml"

log = logging.getLogger("kawa.bandits")


def load_bandits(config: Config) -> dict[str, Bandit]:
    """The project's bandits by name, from its code (`code` in kawa.yaml) and `bandits.yaml`.

    Two bandits with one name are refused. Raises ProjectCodeError or BanditError, naming the file.
    """
    from kawa.project_code import load

    found = load(config)
    bandits: dict[str, Bandit] = dict(found.get("bandit", {}))  # type: ignore[arg-type]
    path = Path(config.root) / YAML_NAME
    if path.is_file():
        for bandit in bandits_from_yaml(path):
            if bandit.name in bandits:
                raise BanditError(
                    f"{path}: bandit {bandit.name!r} is also defined in the project's code; rename one"
                )
            bandits[bandit.name] = bandit
    return dict(sorted(bandits.items()))


class DeclaredBandits:
    """Calling it returns the project's bandits, loading them again after a declaring file changes.

    A file that fails to load keeps the bandits of the last good load (`error` says why), so a
    half-saved edit never takes a live bandit away from the product.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.error: str | None = None
        self._signature: tuple[tuple[str, int, int], ...] | None = None
        self._bandits: dict[str, Bandit] = {}
        self._lock = threading.Lock()

    def __call__(self) -> dict[str, Bandit]:
        """The bandits by name (the same dict until a file changes)."""
        from kawa.project_code import ProjectCodeError, files_signature

        signature = files_signature(self.config, YAML_NAME)
        with self._lock:
            if signature == self._signature:
                return self._bandits
            self._signature = signature
            try:
                self._bandits = load_bandits(self.config)
                self.error = None
            except (ProjectCodeError, BanditError) as exc:
                self.error = str(exc)
                log.error("cannot load the project's bandits, keeping the last good ones: %s", exc)
            return self._bandits
