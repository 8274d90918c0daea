"""SQL over one project's lake tables, in an in-memory DuckDB that can read nothing else.

Every query gets a fresh connection with one view per table, built from the tables' manifests, so a
reader never holds a lock that the lake writer needs. The connection is then locked down: file access
is limited to the project's own table folders and the configuration cannot be changed back, so SQL of
one project can never read another project's files or the host's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from kawa.events.schema import EVENTS_SCHEMA, REJECTED_SCHEMA
from kawa.lake.table import LakeTable, list_tables

# Tables every project has, empty until the first events land.
BUILTIN = {"events": EVENTS_SCHEMA, "rejected_events": REJECTED_SCHEMA}


class SQLError(ValueError):
    """The SQL failed; the message is DuckDB's, which names the problem."""


class Warehouse:
    """A project's warehouse: `query` runs read-only SQL over its lake tables."""

    def __init__(self, lake_root: Path, project: str, *, memory_limit: str = "2GB", threads: int = 2) -> None:
        self.lake_root = Path(lake_root)
        self.project = project
        self.memory_limit = memory_limit
        self.threads = threads

    def tables(self) -> list[str]:
        return sorted(set(BUILTIN) | set(list_tables(self.lake_root, self.project)))

    def table(self, name: str) -> LakeTable:
        return LakeTable(self.lake_root, name, self.project)

    @contextmanager
    def connect(self, *, threads: int | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A locked-down DuckDB connection with a view per table of this project.

        Each connection is its own DuckDB database with `memory_limit`; `threads` overrides the
        warehouse's for this one (a query split in shards runs one single-threaded connection each).
        """
        db = duckdb.connect(config={"threads": threads or self.threads, "memory_limit": self.memory_limit})
        try:
            allowed: list[str] = []
            for name in self.tables():
                table = self.table(name)
                files = [str(p) for p in table.files()]
                if files:
                    allowed.append(str(table.path) + "/")
                    listing = ", ".join(_literal(f) for f in files)
                    db.execute(
                        f'CREATE VIEW "{name}" AS SELECT * FROM read_parquet([{listing}], '
                        "union_by_name = true, hive_partitioning = false)"
                    )
                else:
                    schema = BUILTIN.get(name)
                    if schema is None:
                        continue
                    db.register(f"_empty_{name}", schema.empty_table())
                    db.execute(f'CREATE VIEW "{name}" AS SELECT * FROM "_empty_{name}"')
            db.execute("SET allowed_directories = ?", [allowed])
            db.execute("SET enable_external_access = false")
            db.execute("SET autoinstall_known_extensions = false")
            db.execute("SET autoload_known_extensions = false")
            db.execute("SET lock_configuration = true")
            yield db
        finally:
            db.close()

    def query(self, sql: str, params: list[Any] | None = None, *, limit: int | None = None) -> pa.Table:
        """Run `sql` and return the result as Arrow (at most `limit` rows when given)."""
        with self.connect() as db:
            return run(db, sql, params, limit=limit)


def run(
    db: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None, *, limit: int | None = None
) -> pa.Table:
    """`sql`'s result on a connection from `Warehouse.connect` (at most `limit` rows when given)."""
    try:
        rel = db.sql(sql, params=params) if params else db.sql(sql)
        if rel is None:
            return pa.table({})
        if limit is not None:
            rel = rel.limit(limit)
        return rel.to_arrow_table()
    except duckdb.Error as exc:
        raise SQLError(str(exc)) from None


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
