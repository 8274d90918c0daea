"""A step's view of the warehouse that notes which tables it read and wrote, for lineage and caching.

Reads are the tables a query names (DuckDB's own parser says which), at the manifest version the
connection's views were built from; writes are lake commits, with the partition and the new version.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import duckdb

from kawa.lake.table import LakeTable, Manifest
from kawa.warehouse import Warehouse

Record = Callable[[dict[str, Any]], None]


class RecordingWarehouse(Warehouse):
    """The project's warehouse, reporting each table read or written to `record`."""

    def __init__(self, base: Warehouse, record: Record) -> None:
        super().__init__(base.lake_root, base.project, memory_limit=base.memory_limit, threads=base.threads)
        self._record = record

    def table(self, name: str) -> LakeTable:
        return _RecordingTable(self.lake_root, name, self.project, self._record)

    @contextmanager
    def connect(self, *, threads: int | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        # The versions now are those the views are built from a moment later; a commit in between
        # makes lineage name a version older than the one read, never a newer one.
        versions = {name: str(self.table(name).manifest().version) for name in self.tables()}
        with super().connect(threads=threads) as db:
            yield _RecordingConnection(db, versions, self._record)  # type: ignore[misc]


class _RecordingTable(LakeTable):
    """A lake table whose commits are reported as writes."""

    def __init__(self, lake_root: Any, table: str, project: str, record: Record) -> None:
        super().__init__(lake_root, table, project)
        self._record = record

    def commit(
        self,
        add: list[Any],
        *,
        remove: list[str] | None = None,
        replace_partitions: list[dict[str, str]] | None = None,
        replace_all: bool = False,
        partition_by: list[str] | None = None,
    ) -> Manifest:
        manifest = super().commit(
            add,
            remove=remove,
            replace_partitions=replace_partitions,
            replace_all=replace_all,
            partition_by=partition_by,
        )
        partitions = replace_partitions or [None]  # type: ignore[list-item]
        for partition in partitions:
            self._record(
                {
                    "direction": "write",
                    "kind": "table",
                    "name": self.table,
                    "partition": partition or None,
                    "version": str(manifest.version),
                }
            )
        return manifest


class _RecordingConnection:
    """A DuckDB connection that reports the warehouse tables each SQL statement names."""

    def __init__(self, db: duckdb.DuckDBPyConnection, versions: dict[str, str], record: Record) -> None:
        self._db = db
        self._versions = versions
        self._record = record

    def _note(self, sql: object) -> None:
        if not isinstance(sql, str):
            return
        for name in sorted(named_tables(self._db, sql, set(self._versions))):
            if name in self._versions:
                self._record(
                    {
                        "direction": "read",
                        "kind": "table",
                        "name": name,
                        "partition": None,
                        "version": self._versions[name],
                    }
                )

    def sql(self, query: str, *args: Any, **kwargs: Any) -> Any:
        self._note(query)
        return self._db.sql(query, *args, **kwargs)

    def query(self, query: str, *args: Any, **kwargs: Any) -> Any:
        self._note(query)
        return self._db.query(query, *args, **kwargs)

    def execute(self, query: str, *args: Any, **kwargs: Any) -> Any:
        self._note(query)
        return self._db.execute(query, *args, **kwargs)

    def table(self, name: str) -> Any:
        self._note(f'SELECT * FROM "{name}"')
        return self._db.table(name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def named_tables(db: duckdb.DuckDBPyConnection, sql: str, known: set[str]) -> set[str]:
    """Which of the `known` tables `sql` reads: from DuckDB's parse tree, or by name for non-SELECTs.

    >>> named_tables(duckdb.connect(), "WITH x AS (SELECT * FROM Events) SELECT * FROM x", {"events", "x2"})
    {'events'}
    """
    try:
        tree = json.loads(db.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])
    except (duckdb.Error, TypeError, ValueError):
        tree = {"error": True}
    if not tree.get("error"):
        found: set[str] = set()
        _base_tables(tree, found)
        return {name.lower() for name in found} & known
    # Only SELECTs have a serialised tree (CREATE ... AS, COPY, EXPLAIN do not): match names as words.
    words = {w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", sql)}
    return words & known


def _base_tables(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        if node.get("type") == "BASE_TABLE" and isinstance(node.get("table_name"), str):
            found.add(node["table_name"])
        for value in node.values():
            _base_tables(value, found)
    elif isinstance(node, list):
        for value in node:
            _base_tables(value, found)
