"""`kawa pipeline test`: run a pipeline for real against a sample of the warehouse, in a sandbox.

The sandbox is a state folder of its own: its lake holds a sample of every table of the project
(each data file sampled into the same partition, so partitioned tables stay partitioned), and its
metadata, artifacts, event log and online store start empty. The pipeline runs there exactly as it
would in production (steps in their own processes, kind `test`, no cache, no webhook), so it can
read, write, register models and fail without touching anything real.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import msgspec

from kawa.lake.table import DataFile, LakeTable, list_tables

if TYPE_CHECKING:
    from kawa.config import Config
    from kawa.pipelines.executor import Executor
    from kawa.pipelines.pipeline import Pipeline
    from kawa.pipelines.runner import RunEvent
    from kawa.pipelines.runs import RunRecord


@dataclass(frozen=True)
class SampledTable:
    name: str
    rows: int  # in the sandbox
    source_rows: int


@dataclass
class Sandbox:
    """A sandbox state folder and the settings that point at it."""

    config: Config
    folder: Path
    tables: list[SampledTable]
    temporary: bool

    def close(self) -> None:
        """Remove the sandbox folder, unless it was asked to be kept."""
        if self.temporary:
            shutil.rmtree(self.folder, ignore_errors=True)


def make_sandbox(
    config: Config,
    project: str,
    *,
    fraction: float = 0.1,
    min_rows: int = 1000,
    seed: int = 42,
    folder: Path | None = None,
) -> Sandbox:
    """A sandbox for `project` whose lake holds a sample of its warehouse.

    Each data file keeps every row when it has at most `min_rows`, else about `fraction` of them
    (Bernoulli sample, repeatable with `seed`).
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction {fraction!r} must be above 0 and at most 1, e.g. 0.1 for 10%")
    temporary = folder is None
    root = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="kawa-sandbox-"))
    root.mkdir(parents=True, exist_ok=True)
    raw = msgspec.to_builtins(config)
    raw["state_dir"] = str(root.resolve())
    raw["notify"] = {**raw.get("notify", {}), "webhook": None}  # a test run tells nobody
    raw["stores"] = {"event_log": "files", "online": "lmdb", "metadata": "sqlite", "artifacts": "local"}
    sandbox_config = msgspec.convert(raw, type(config))
    source_lake = config.state_path / "lake"
    target_lake = root / "lake"
    tables = [
        _sample(
            LakeTable(source_lake, name, project),
            LakeTable(target_lake, name, project),
            fraction,
            min_rows,
            seed,
        )
        for name in list_tables(source_lake, project)
    ]
    return Sandbox(sandbox_config, root, tables, temporary)


def _sample(source: LakeTable, target: LakeTable, fraction: float, min_rows: int, seed: int) -> SampledTable:
    manifest = source.manifest()
    added: list[DataFile] = []
    db = duckdb.connect(config={"threads": 2})
    try:
        for f in manifest.files:
            path = target.new_file(f.partition, f"sample-{uuid.uuid4().hex[:12]}.parquet")
            sample = (
                "" if f.rows <= min_rows else f" USING SAMPLE {fraction * 100:g} PERCENT (bernoulli, {seed})"
            )
            query = f"SELECT * FROM read_parquet(?, hive_partitioning = false){sample}"
            db.execute(
                f"COPY ({query}) TO ? (FORMAT parquet, COMPRESSION zstd)",
                [str(source.path / f.path), str(path)],
            )
            rows = db.execute("SELECT count(*) FROM read_parquet(?)", [str(path)]).fetchall()[0][0]
            added.append(
                DataFile(
                    str(path.relative_to(target.path)), int(rows), path.stat().st_size, dict(f.partition)
                )
            )
    finally:
        db.close()
    target.commit(added, replace_all=True, partition_by=list(manifest.partition_by))
    return SampledTable(source.table, sum(f.rows for f in added), sum(f.rows for f in manifest.files))


def run_in_sandbox(
    sandbox: Sandbox,
    pipeline: Pipeline,
    params: dict[str, Any] | None = None,
    *,
    project: str,
    logical_date: datetime | None = None,
    executor: Executor | None = None,
    on_event: Callable[[RunEvent], None] | None = None,
) -> RunRecord:
    """Run `pipeline` in `sandbox` as a `test` run, each step in its own process, without the cache."""
    from kawa.pipelines.process import SubprocessExecutor
    from kawa.pipelines.runner import run_pipeline
    from kawa.runtime import Runtime

    runtime = Runtime(sandbox.config)
    try:
        return run_pipeline(
            runtime,
            pipeline,
            params,
            project=project,
            kind="test",
            experiment="test",
            logical_date=logical_date,
            executor=executor or SubprocessExecutor(),
            on_event=on_event,
            cache=False,
        )
    finally:
        runtime.close()
