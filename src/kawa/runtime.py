"""A project's opened parts: the config plus the stores it names, opened on first use."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from kawa.auth import KeyRing
from kawa.config import Config, load_config
from kawa.stores.artifacts import ArtifactStore, open_artifacts
from kawa.stores.eventlog import EventLog, open_event_log
from kawa.stores.metadata import MetadataStore, open_metadata
from kawa.stores.online import OnlineStore, open_online_store
from kawa.warehouse import Warehouse


class Runtime:
    """What a process of kawa works with; close it when done."""

    def __init__(self, config: Config | None = None, *, log_writer: bool = False) -> None:
        self.config = config or load_config()
        self.log_writer = log_writer
        self.state_path.mkdir(parents=True, exist_ok=True)

    @property
    def state_path(self) -> Path:
        return self.config.state_path

    @property
    def lake_root(self) -> Path:
        return self.state_path / "lake"

    @cached_property
    def metadata(self) -> MetadataStore:
        return open_metadata(self.config.stores.metadata, self.state_path)

    @cached_property
    def keyring(self) -> KeyRing:
        return KeyRing(self.metadata)

    @cached_property
    def event_log(self) -> EventLog:
        return open_event_log(self.config.stores.event_log, self.state_path, writer=self.log_writer)

    @cached_property
    def online(self) -> OnlineStore:
        return open_online_store(self.config.stores.online, self.state_path)

    @cached_property
    def artifacts(self) -> ArtifactStore:
        return open_artifacts(self.config.stores.artifacts, self.state_path)

    def warehouse(self, project: str | None = None) -> Warehouse:
        return Warehouse(self.lake_root, project or self.config.project)

    def register_configured_keys(self) -> None:
        """Make the keys written in kawa.yaml valid (idempotent)."""
        for project, keys in self.config.projects.items():
            self.keyring.add_project(project, keys)

    def close(self) -> None:
        for name in ("event_log", "online", "artifacts", "keyring", "metadata"):
            part = self.__dict__.pop(name, None)
            if part is not None:
                part.close()
