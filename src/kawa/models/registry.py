"""The model registry: numbered versions with metrics, params, training run and data, and aliases.

Rows live in the metadata store (`models`, `model_versions`, `model_aliases`); bundles live in the
artifact store under `models/<project>/<name>/<version>/`. Versions never change once registered,
so loaded bundles are cached by (project, name, version), and a deleted model's numbers are never
given out again (the name registered anew goes on after them); aliases move, so `resolve` re-reads an
alias whenever the metadata database changed (see `ChangeWatcher`): a promotion made by any process
is seen at the next request (on PostgreSQL once the promoting commit's notification has arrived).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, func, insert, select, update

from kawa.models.bundle import Bundle, write_files
from kawa.models.errors import ModelNotFoundError
from kawa.models.records import ModelSummary, ModelVersion, to_json_text, version_record
from kawa.stores.artifacts import ArtifactStore
from kawa.stores.metadata import MetadataStore
from kawa.stores.metadata.tables import model_aliases, model_tombstones, model_versions, models, projects

if TYPE_CHECKING:
    from kawa.runtime import Runtime

DEFAULT_ALIAS = "production"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_ALIAS = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_PROJECT = re.compile(r"[a-z][a-z0-9_-]{0,63}")


class Registry:
    """Register, find, load and promote model versions; thread-safe, one per process is plenty.

    `trusted` names extra types that saved models may construct (see docs/models.md, "Trust model").
    """

    def __init__(
        self,
        metadata: MetadataStore,
        artifacts: ArtifactStore,
        *,
        cache_size: int = 16,
        ttl_s: float = 1.0,
        trusted: Sequence[str] = (),
    ) -> None:
        self.metadata = metadata
        self.artifacts = artifacts
        self.cache_size = cache_size
        self.trusted = tuple(trusted)
        self._watcher = metadata.watcher(ttl_s=ttl_s)
        self._lock = threading.Lock()
        self._aliases: dict[tuple[str, str, str], int | None] = {}
        self._generation = 0  # bumped when the alias cache is dropped, so racing reads do not refill it
        self._bundles: OrderedDict[tuple[str, str, int], Bundle] = OrderedDict()

    @classmethod
    def from_runtime(cls, runtime: Runtime) -> Registry:
        """The registry over a runtime's metadata and artifact stores."""
        return cls(runtime.metadata, runtime.artifacts)

    # -- writing -----------------------------------------------------------------------------------

    def register(
        self,
        project: str,
        name: str,
        bundle: Bundle,
        *,
        metrics: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        training: Mapping[str, Any] | None = None,
        description: str | None = None,
    ) -> int:
        """Store `bundle` as the next version of `name` (1, 2, ...) and return that version number.

        `params` defaults to the bundle's own (estimator settings, preprocessing options);
        `training` records the training data, e.g. {"query": "...", "start": ..., "end": ...}.
        """
        _check(project, name)
        files = bundle.to_files()
        record = {
            "run_id": run_id,
            "flavor": bundle.flavor.name,
            "signature": to_json_text(bundle.signature),
            "metrics": to_json_text(metrics or {}),
            "params": to_json_text(params if params is not None else bundle.params()),
            "training": to_json_text(training or {}),
        }
        now = datetime.now(UTC)
        with self.metadata.begin() as conn:
            _ensure_model(conn, project, name, description, now)
            version = _last_version(conn, project, name) + 1
            prefix = artifact_prefix(project, name, version)
            # Leftovers of an earlier attempt whose transaction failed after writing files.
            self.artifacts.delete(prefix)
            write_files(self.artifacts, prefix, files)
            conn.execute(
                insert(model_versions).values(
                    project=project, name=name, version=version, artifact=prefix, created_at=now, **record
                )
            )
        return version

    def promote(self, project: str, name: str, version: int, alias: str = DEFAULT_ALIAS) -> int | None:
        """Point `alias` at `version`; returns the version it pointed at before (None if it was new)."""
        _check(project, name)
        if not _ALIAS.fullmatch(alias):
            raise ValueError(
                f"alias {alias!r} must be lowercase letters, digits, '-' or '_', such as 'production'"
            )
        now = datetime.now(UTC)
        with self.metadata.begin() as conn:
            self._version_row(conn, project, name, version)
            where = (
                model_aliases.c.project == project,
                model_aliases.c.name == name,
                model_aliases.c.alias == alias,
            )
            before = conn.execute(select(model_aliases.c.version).where(*where)).scalar()
            if before is None:
                conn.execute(
                    insert(model_aliases).values(
                        project=project, name=name, alias=alias, version=version, updated_at=now
                    )
                )
            else:
                conn.execute(update(model_aliases).where(*where).values(version=version, updated_at=now))
        self._drop_aliases()
        return None if before is None else int(before)

    def delete(self, project: str, name: str) -> int:
        """Remove model `name` with every version, alias and bundle; returns how many versions went.

        Its version numbers are not given out again: registering `name` later starts after the last one.
        """
        _check(project, name)
        now = datetime.now(UTC)
        where = (model_versions.c.project == project, model_versions.c.name == name)
        with self.metadata.begin() as conn:
            last = _last_version(conn, project, name)
            artifacts = conn.execute(select(model_versions.c.artifact).where(*where)).scalars().all()
            model = (models.c.project == project, models.c.name == name)
            if not artifacts and conn.execute(select(models.c.name).where(*model)).first() is None:
                raise ModelNotFoundError(self._unknown_model(conn, project, name))
            tombstone = (model_tombstones.c.project == project, model_tombstones.c.name == name)
            conn.execute(delete(model_tombstones).where(*tombstone))
            conn.execute(
                insert(model_tombstones).values(project=project, name=name, last_version=last, deleted_at=now)
            )
            conn.execute(
                delete(model_aliases).where(model_aliases.c.project == project, model_aliases.c.name == name)
            )
            conn.execute(delete(model_versions).where(*where))
            conn.execute(delete(models).where(*model))
        with self._lock:
            for key in [k for k in self._bundles if k[:2] == (project, name)]:
                del self._bundles[key]
        self._drop_aliases()
        for prefix in artifacts:  # after the commit: a failure here leaves files nothing points at
            self.artifacts.delete(prefix)
        return len(artifacts)

    # -- reading -----------------------------------------------------------------------------------

    def resolve(self, project: str, name: str, alias: str = DEFAULT_ALIAS) -> int:
        """The version `alias` points at; cheap enough to call on every request."""
        if self._watcher.changed():
            self._drop_aliases()
        key = (project, name, alias)
        with self._lock:
            cached = key in self._aliases
            found = self._aliases.get(key)
            generation = self._generation
        if not cached:
            with self.metadata.connect() as conn:
                found = conn.execute(
                    select(model_aliases.c.version).where(
                        model_aliases.c.project == project,
                        model_aliases.c.name == name,
                        model_aliases.c.alias == alias,
                    )
                ).scalar()
            with self._lock:
                if generation == self._generation:
                    self._aliases[key] = found
        if found is None:
            self.show(project, name)  # raises if the model itself is unknown
            raise ModelNotFoundError(
                f"model {name!r} of project {project!r} has no alias {alias!r}; "
                f"point it at a version with `kawa models promote {name} VERSION --alias {alias}`"
            )
        return int(found)

    def load(self, project: str, name: str, version: int | None = None, alias: str = DEFAULT_ALIAS) -> Bundle:
        """The bundle of `version`, or of the version `alias` points at when no version is given."""
        if version is None:
            version = self.resolve(project, name, alias)
        key = (project, name, int(version))
        with self._lock:
            bundle = self._bundles.get(key)
            if bundle is not None:
                self._bundles.move_to_end(key)
                return bundle
        with self.metadata.connect() as conn:
            row = self._version_row(conn, project, name, int(version))
        bundle = Bundle.load(self.artifacts, row.artifact, trusted=self.trusted)
        with self._lock:
            self._bundles[key] = bundle
            while len(self._bundles) > self.cache_size:
                self._bundles.popitem(last=False)
        return bundle

    def show(self, project: str, name: str, version: int | None = None) -> ModelVersion:
        """One version with everything recorded about it (the newest when `version` is None)."""
        with self.metadata.connect() as conn:
            if version is None:
                version = conn.execute(
                    select(func.max(model_versions.c.version)).where(
                        model_versions.c.project == project, model_versions.c.name == name
                    )
                ).scalar()
                if version is None:
                    raise ModelNotFoundError(self._unknown_model(conn, project, name))
            row = self._version_row(conn, project, name, int(version))
            aliases = self._aliases_of(conn, project, name)
        return version_record(row, aliases)

    def list_versions(self, project: str, name: str) -> list[ModelVersion]:
        """Every version of a model, oldest first."""
        with self.metadata.connect() as conn:
            rows = conn.execute(
                select(model_versions)
                .where(model_versions.c.project == project, model_versions.c.name == name)
                .order_by(model_versions.c.version)
            ).all()
            if not rows:
                raise ModelNotFoundError(self._unknown_model(conn, project, name))
            aliases = self._aliases_of(conn, project, name)
        return [version_record(row, aliases) for row in rows]

    def list_models(self, project: str) -> list[ModelSummary]:
        """The project's models by name, each with its newest version and aliases."""
        with self.metadata.connect() as conn:
            counts = {
                r.name: (r.latest, r.n)
                for r in conn.execute(
                    select(
                        model_versions.c.name,
                        func.max(model_versions.c.version).label("latest"),
                        func.count().label("n"),
                    )
                    .where(model_versions.c.project == project)
                    .group_by(model_versions.c.name)
                )
            }
            aliases: dict[str, dict[str, int]] = {}
            for r in conn.execute(select(model_aliases).where(model_aliases.c.project == project)):
                aliases.setdefault(r.name, {})[r.alias] = r.version
            rows = conn.execute(
                select(models).where(models.c.project == project).order_by(models.c.name)
            ).all()
        return [
            ModelSummary(
                project=project,
                name=r.name,
                description=r.description,
                created_at=r.created_at,
                latest_version=counts.get(r.name, (None, 0))[0],
                versions=counts.get(r.name, (None, 0))[1],
                aliases=dict(sorted(aliases.get(r.name, {}).items())),
            )
            for r in rows
        ]

    def close(self) -> None:
        """Release the change watcher's connection and the cached bundles."""
        self._watcher.close()
        with self._lock:
            self._bundles.clear()
            self._aliases.clear()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------------

    def _drop_aliases(self) -> None:
        with self._lock:
            self._aliases.clear()
            self._generation += 1

    def _version_row(self, conn: Connection, project: str, name: str, version: int) -> Any:
        row = conn.execute(
            select(model_versions).where(
                model_versions.c.project == project,
                model_versions.c.name == name,
                model_versions.c.version == version,
            )
        ).first()
        if row is None:
            versions = (
                conn.execute(
                    select(model_versions.c.version)
                    .where(model_versions.c.project == project, model_versions.c.name == name)
                    .order_by(model_versions.c.version)
                )
                .scalars()
                .all()
            )
            if not versions:
                raise ModelNotFoundError(self._unknown_model(conn, project, name))
            raise ModelNotFoundError(
                f"model {name!r} of project {project!r} has no version {version}; "
                f"it has {', '.join(map(str, versions))}"
            )
        return row

    @staticmethod
    def _aliases_of(conn: Connection, project: str, name: str) -> dict[int, list[str]]:
        found: dict[int, list[str]] = {}
        for r in conn.execute(
            select(model_aliases.c.alias, model_aliases.c.version)
            .where(model_aliases.c.project == project, model_aliases.c.name == name)
            .order_by(model_aliases.c.alias)
        ):
            found.setdefault(r.version, []).append(r.alias)
        return found

    @staticmethod
    def _unknown_model(conn: Connection, project: str, name: str) -> str:
        names = (
            conn.execute(select(models.c.name).where(models.c.project == project).order_by(models.c.name))
            .scalars()
            .all()
        )
        known = f"its models: {', '.join(names)}" if names else "it has no models yet"
        return f"no model {name!r} in project {project!r}; {known}"


def artifact_prefix(project: str, name: str, version: int) -> str:
    """Where a version's bundle lives in the artifact store."""
    return f"models/{project}/{name}/{version}"


def _check(project: str, name: str) -> None:
    if not _PROJECT.fullmatch(project):
        raise ValueError(
            f"project {project!r} must be lowercase letters, digits, '-' or '_', starting with a letter"
        )
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"model name {name!r} must be 1-128 letters, digits, '.', '-' or '_', "
            "starting with a letter or digit"
        )


def _last_version(conn: Connection, project: str, name: str) -> int:
    """The highest version number `name` has had: of its versions, or of a deleted model of that name."""
    latest = conn.execute(
        select(func.max(model_versions.c.version)).where(
            model_versions.c.project == project, model_versions.c.name == name
        )
    ).scalar()
    deleted = conn.execute(
        select(model_tombstones.c.last_version).where(
            model_tombstones.c.project == project, model_tombstones.c.name == name
        )
    ).scalar()
    return max(int(latest or 0), int(deleted or 0))


def _ensure_model(conn: Connection, project: str, name: str, description: str | None, now: datetime) -> None:
    if conn.execute(select(projects.c.name).where(projects.c.name == project)).first() is None:
        conn.execute(insert(projects).values(name=project, created_at=now))
    where = (models.c.project == project, models.c.name == name)
    if conn.execute(select(models.c.name).where(*where)).first() is None:
        conn.execute(
            insert(models).values(project=project, name=name, description=description or "", created_at=now)
        )
    elif description is not None:
        conn.execute(update(models).where(*where).values(description=description))
