"""Running a SQL script with models: statements in order on one locked-down warehouse connection.

CREATE MODEL runs its query and trains; DROP MODEL removes; any other statement has each ML.* call
evaluated first (its query run on the same connection, itself with ML.* calls allowed), the result
registered as a temporary Arrow table, and the call replaced by that table's name before DuckDB runs
the statement. The query inside an ML.* call runs on its own, behind the definitions of the statement's
WITH clause that come before the call (see `scope.py`); it also sees the warehouse's tables and the
temporary tables made earlier in the script.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from kawa.models import Registry
from kawa.sqlml import model as functions
from kawa.sqlml import store
from kawa.sqlml.errors import SQLModelError
from kawa.sqlml.options import resolve
from kawa.sqlml.parse import CreateModel, DropModel, MLCall, Query, Statement, ml_calls, split
from kawa.sqlml.scope import visible
from kawa.sqlml.train import train
from kawa.warehouse import SQLError
from kawa.warehouse.engine import run


class Session:
    """Statements of one script over one DuckDB connection of the project's warehouse."""

    def __init__(self, db: duckdb.DuckDBPyConnection, registry: Registry, project: str) -> None:
        self.db = db
        self.registry = registry
        self.project = project
        # An ML.* call -> the table holding its result, within the statement being run: a later
        # statement may have replaced the model or changed the rows, so it evaluates its calls again.
        self._results: dict[str, str] = {}
        self._tables = 0  # tables registered so far; names are never reused (a view may name one)

    def script(self, sql: str, limit: int | None = None) -> pa.Table:
        """Run every statement of `sql`; the result is the last one's (at most `limit` rows)."""
        statements = split(sql)
        if not statements:
            raise SQLModelError("there is no statement to run")
        result = pa.table({})
        for i, statement in enumerate(statements):
            result = self.statement(statement, limit if i == len(statements) - 1 else None)
        return result

    def statement(self, statement: Statement, limit: int | None = None) -> pa.Table:
        self._results.clear()
        if isinstance(statement, CreateModel):
            return self.create(statement)
        if isinstance(statement, DropModel):
            return self.drop(statement)
        assert isinstance(statement, Query)
        return self.query(statement.text, limit)

    def query(self, sql: str, limit: int | None = None, *, context: str | None = None) -> pa.Table:
        """Run one query (its ML.* calls first) and return its rows."""
        text = self.rewrite(sql)
        try:
            return run(self.db, text, limit=limit)
        except SQLError as exc:
            if context is None:
                raise
            raise SQLError(f"{context}: the query failed: {exc}") from None

    def rewrite(self, sql: str) -> str:
        """`sql` with each outermost ML.* call replaced by the name of a table holding its result."""
        parts: list[str] = []
        position = 0
        for call in ml_calls(sql):
            query = None if call.query is None else visible(sql, call.start, call.query)
            key = repr((call.function, call.model, query, sorted(call.settings.items())))
            name = self._results.get(key)
            if name is None:  # the same call again (a CTE seen by several calls) is not run twice
                self._tables += 1
                name = self._results[key] = f"__kawa_ml_{self._tables}"
                self.db.register(name, self.call(call, query))
            parts += [sql[position : call.start], f'"{name}"']
            position = call.end
        return "".join(parts) + sql[position:]

    def call(self, call: MLCall, query: str | None) -> pa.Table:
        """The table an ML.* call stands for, reading the rows of `query`."""
        where = f"ML.{call.function}(MODEL {call.model})"
        model = store.newest(self.registry, self.project, call.model, where)
        rows = None if query is None else self.query(query, context=where)
        if call.function == "PREDICT":
            assert rows is not None
            return functions.predict(model, rows, call.settings, where)
        if call.function == "EVALUATE":
            return functions.evaluate(model, rows, call.settings, where)
        return functions.centroids(model, call.settings, where)

    def create(self, statement: CreateModel) -> pa.Table:
        """Train and register a version; one row saying which, with the row counts and any notes."""
        where = f"CREATE MODEL {statement.name}"
        options = resolve(statement.options, statement.name)
        before = store.exists(self.registry, self.project, statement.name, where)
        if before is not None and not statement.replace:
            if statement.if_not_exists:
                return _created(
                    statement.name, before.version, before.params.get("model_type"), None, None, []
                )
            raise SQLModelError(
                f"{where}: model {statement.name!r} already exists (version {before.version}); use "
                "CREATE OR REPLACE MODEL to train a new version, or CREATE MODEL IF NOT EXISTS"
            )
        rows = self.query(statement.query, context=where)
        trained = train(statement.name, options, rows)
        version = store.register(self.registry, self.project, trained, options, statement.query)
        return _created(
            statement.name, version, options["model_type"], trained.training_rows, trained.evaluation_rows,
            trained.notes,
        )  # fmt: skip

    def drop(self, statement: DropModel) -> pa.Table:
        where = f"DROP MODEL {statement.name}"
        if store.exists(self.registry, self.project, statement.name, where) is None:
            if statement.if_exists:
                return pa.table({"model": [statement.name], "dropped_versions": [0]})
            raise SQLModelError(f"{where}: {store.unknown(self.registry, self.project, statement.name)}")
        dropped = self.registry.delete(self.project, statement.name)
        return pa.table({"model": [statement.name], "dropped_versions": [dropped]})


def _created(
    name: str, version: int, model_type: object, rows: int | None, held_out: int | None, notes: list[str]
) -> pa.Table:
    return pa.table(
        {
            "model": [name],
            "version": [version],
            "model_type": [None if model_type is None else str(model_type)],
            "training_rows": pa.array([rows], pa.int64()),
            "evaluation_rows": pa.array([held_out], pa.int64()),
            "notes": ["; ".join(notes) or None],
        }
    )
