"""The warehouse: DuckDB SQL over a project's lake tables, and loading files into it."""

from kawa.warehouse.engine import SQLError, Warehouse

__all__ = ["SQLError", "Warehouse"]
