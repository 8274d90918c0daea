"""The data catalog: the project's table docs merged with the live warehouse schema and with lineage.

A column is `documented` (in the docs and the warehouse), `undocumented` (in the warehouse only) or
`vanished` (in the docs only: renamed or dropped, so its doc is out of date). A table likewise, as
`documented`, `undocumented` or `vanished`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from kawa.catalog.docs import TableDoc, load_docs

if TYPE_CHECKING:
    from pathlib import Path

    from kawa.lineage import LineageGraph
    from kawa.warehouse import Warehouse

DOCUMENTED, UNDOCUMENTED, VANISHED = "documented", "undocumented", "vanished"


@dataclass
class CatalogColumn:
    name: str
    type: str | None  # None for a vanished column
    description: str
    owner: str | None
    status: str


@dataclass
class CatalogTable:
    """One table as the catalog shows it, with the pipelines that write and read it."""

    name: str
    description: str
    owner: str | None
    status: str
    source: str | None  # the catalog file that describes it
    rows: int | None
    columns: list[CatalogColumn] = field(default_factory=list)
    written_by: list[str] = field(default_factory=list)
    read_by: list[str] = field(default_factory=list)

    @property
    def undocumented(self) -> list[str]:
        return [c.name for c in self.columns if c.status == UNDOCUMENTED]

    @property
    def vanished(self) -> list[str]:
        return [c.name for c in self.columns if c.status == VANISHED]


@dataclass
class Catalog:
    """Every table of the project, documented or not, and what is missing from the docs."""

    project: str
    tables: list[CatalogTable]

    def table(self, name: str) -> CatalogTable:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(f"no table {name!r} in the catalog")

    def report(self) -> dict[str, Any]:
        """What the docs lack or no longer match: undocumented and vanished tables and columns."""
        return {
            "undocumented_tables": [t.name for t in self.tables if t.status == UNDOCUMENTED],
            "vanished_tables": [t.name for t in self.tables if t.status == VANISHED],
            "undocumented_columns": {t.name: t.undocumented for t in self.tables if t.undocumented},
            "vanished_columns": {t.name: t.vanished for t in self.tables if t.vanished},
        }

    @property
    def complete(self) -> bool:
        """Whether every live table and column is documented and no doc is out of date."""
        return not any(self.report().values())

    def to_json(self) -> dict[str, Any]:
        return {"project": self.project, "tables": [asdict(t) for t in self.tables], "report": self.report()}


def build_catalog(
    root: Path,
    warehouse: Warehouse,
    *,
    graph: LineageGraph | None = None,
    docs: dict[str, TableDoc] | None = None,
) -> Catalog:
    """The catalog of the project at `root`: its docs, `warehouse`'s live schema, and `graph`'s lineage."""
    docs = load_docs(root) if docs is None else docs
    live = _schema(warehouse)
    tables: list[CatalogTable] = []
    for name in sorted(set(live) | set(docs)):
        doc = docs.get(name)
        schema = live.get(name)
        if schema is None:
            if doc is not None and doc.source == "kawa":
                continue  # kawa's own table that this project has not used yet
            status = VANISHED
        else:
            status = DOCUMENTED if doc is not None and doc.description else UNDOCUMENTED
        columns, rows = schema if schema is not None else ([], None)
        table = CatalogTable(
            name=name,
            description=doc.description if doc else "",
            owner=doc.owner if doc else None,
            status=status,
            source=doc.source if doc else None,
            rows=rows,
            columns=_columns(columns, doc, vanished_table=schema is None),
        )
        if graph is not None:
            from kawa.lineage import Dataset

            dataset = Dataset("table", name)
            table.written_by = [n.name for n in graph.writers(dataset)]
            table.read_by = [n.name for n in graph.readers(dataset)]
        tables.append(table)
    return Catalog(warehouse.project, tables)


def _columns(
    live: list[tuple[str, str]], doc: TableDoc | None, *, vanished_table: bool
) -> list[CatalogColumn]:
    documented = doc.columns if doc is not None else {}
    out = []
    for name, kind in live:
        column = documented.get(name)
        if column is not None and column.description:
            out.append(CatalogColumn(name, kind, column.description, column.owner, DOCUMENTED))
        else:
            out.append(CatalogColumn(name, kind, "", column.owner if column else None, UNDOCUMENTED))
    names = {n for n, _ in live}
    for name, column in documented.items():
        if name not in names:
            out.append(CatalogColumn(name, None, column.description, column.owner, VANISHED))
    return out


def _schema(warehouse: Warehouse) -> dict[str, tuple[list[tuple[str, str]], int]]:
    """Each live table's columns (name, type) and row count (from the lake manifests)."""
    found: dict[str, tuple[list[tuple[str, str]], int]] = {}
    with warehouse.connect() as db:
        views = {
            row[0] for row in db.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
        }
        for name in warehouse.tables():
            if name not in views:
                continue
            columns = [(str(r[0]), str(r[1])) for r in db.sql(f'DESCRIBE "{name}"').fetchall()]
            rows = sum(f.rows for f in warehouse.table(name).manifest().files)
            found[name] = (columns, rows)
    return found
