"""The metadata store (runs, models, schedules, catalog, keys), chosen by `stores.metadata` in kawa.yaml."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import URL

from kawa.stores._backends import BackendError
from kawa.stores.metadata.changes import ChangeWatcher
from kawa.stores.metadata.store import MetadataError, MetadataStore

FILE_NAME = "metadata.sqlite3"
URL_SCHEMES = ("sqlite", "postgresql", "postgres")


def open_metadata(spec: str, state_path: Path) -> MetadataStore:
    """The metadata store named by `spec`, migrated to the newest schema.

    `sqlite` keeps it in `<state_path>/metadata.sqlite3`; a URL (`sqlite:///path`,
    `postgresql://user:pass@host/db`, the latter with kawa[postgres]) names the database itself.
    """
    if spec == "sqlite":
        return MetadataStore(URL.create("sqlite", database=str(Path(state_path) / FILE_NAME)))
    scheme = spec.split("://", 1)[0].split("+", 1)[0] if "://" in spec else ""
    if scheme not in URL_SCHEMES:
        raise BackendError(
            f"unknown metadata store {spec!r}; use `sqlite`, a sqlite:///path URL or a postgresql:// URL"
        )
    return MetadataStore(spec)


__all__ = ["ChangeWatcher", "MetadataError", "MetadataStore", "open_metadata"]
