"""Table and column docs kept in the project as YAML (`catalog/*.yaml`), so they live in git.

    # catalog/kpis.yaml
    tables:
      daily_kpis:
        description: Revenue and paying users per day, one partition per logical date.
        owner: data-team
        columns:
          revenue: Revenue in EUR after refunds.     # a column's description, short form
          users:
            description: Distinct users who paid that day.
            owner: growth-team                      # a column may have its own owner

Any number of files; each table is described in one of them. kawa's own tables (`events`,
`rejected_events`) come documented.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CATALOG_DIR = "catalog"


class CatalogError(ValueError):
    """A catalog file cannot be read; the message names the file and what to fix."""


@dataclass
class ColumnDoc:
    description: str = ""
    owner: str | None = None


@dataclass
class TableDoc:
    """What the project says about one table; `source` is the file that says it."""

    name: str
    description: str = ""
    owner: str | None = None
    columns: dict[str, ColumnDoc] = field(default_factory=dict)
    source: str = ""


BUILTIN_DOCS = {
    "events": TableDoc(
        "events",
        "Every accepted event, exactly once, partitioned by day (_date). Written by kawa's collector.",
        "kawa",
        {
            "event_id": ColumnDoc("The event's id: the client's, or one kawa assigned."),
            "event_name": ColumnDoc("What happened: view, add_to_cart, purchase, pipeline_run_finished, ..."),
            "sync_date": ColumnDoc("When it happened (the client's time, or when it was received)."),
            "received_at": ColumnDoc("When kawa's collector received it."),
            "keys": ColumnDoc("Who it is about: user_id, visitor_id, session_id."),
            "page": ColumnDoc("The page (URL) it happened on."),
            "item_id": ColumnDoc("The item (product) it is about."),
            "category": ColumnDoc("The item's category."),
            "price": ColumnDoc("The item's price."),
            "quantity": ColumnDoc("How many items."),
            "revenue": ColumnDoc("Revenue of a purchase."),
            "properties": ColumnDoc("Every other field the event carried, as JSON text."),
            "_date": ColumnDoc("The UTC day of sync_date: the partition."),
        },
        "kawa",
    ),
    "rejected_events": TableDoc(
        "rejected_events",
        "Events kawa refused, with the reason, so nothing is silently dropped.",
        "kawa",
        {
            "received_at": ColumnDoc("When kawa's collector received it."),
            "reason": ColumnDoc("Why it was refused."),
            "index": ColumnDoc("Its position in the request."),
            "event_id": ColumnDoc("Its event_id, if it had one."),
            "payload": ColumnDoc("The event as sent (at most 64 KiB)."),
            "_date": ColumnDoc("The UTC day it was received: the partition."),
        },
        "kawa",
    ),
}


def load_docs(root: Path) -> dict[str, TableDoc]:
    """The table docs of the project at `root`: kawa's own, then those of `catalog/*.yaml`."""
    docs = dict(BUILTIN_DOCS)
    folder = Path(root) / CATALOG_DIR
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]) if folder.is_dir() else []
    for path in files:
        for doc in _read(path, root):
            if doc.name in docs and docs[doc.name].source not in ("kawa", doc.source):
                raise CatalogError(
                    f"{doc.source}: table {doc.name!r} is already described in {docs[doc.name].source}; "
                    "describe each table in one file"
                )
            docs[doc.name] = doc
    return docs


def _read(path: Path, root: Path) -> list[TableDoc]:
    source = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise CatalogError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("tables", {}), dict):
        raise CatalogError(f"{source}: expected `tables:` mapping table names to their description")
    unknown = sorted(set(data) - {"tables"})
    if unknown:
        raise CatalogError(f"{source}: unknown top-level key(s) {', '.join(unknown)}; only `tables:` is read")
    return [_table(source, name, spec) for name, spec in (data.get("tables") or {}).items()]


def _table(source: str, name: Any, spec: Any) -> TableDoc:
    where = f"{source}: table {name!r}"
    if isinstance(spec, str):
        return TableDoc(str(name), description=spec, source=source)
    if not isinstance(spec, dict):
        raise CatalogError(f"{where}: expected a description, or description/owner/columns")
    unknown = sorted(set(spec) - {"description", "owner", "columns"})
    if unknown:
        raise CatalogError(f"{where}: unknown key(s) {', '.join(unknown)}; use description, owner, columns")
    columns = spec.get("columns") or {}
    if not isinstance(columns, dict):
        raise CatalogError(f"{where}: columns must map column names to descriptions")
    doc = TableDoc(
        str(name), _text(where, spec.get("description")), _owner(where, spec.get("owner")), {}, source
    )
    for column, value in columns.items():
        if isinstance(value, dict):
            extra = sorted(set(value) - {"description", "owner"})
            if extra:
                raise CatalogError(f"{where}, column {column!r}: unknown key(s) {', '.join(extra)}")
            doc.columns[str(column)] = ColumnDoc(
                _text(where, value.get("description")), _owner(where, value.get("owner"))
            )
        else:
            doc.columns[str(column)] = ColumnDoc(_text(f"{where}, column {column!r}", value))
    return doc


def _text(where: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str | int | float):
        raise CatalogError(f"{where}: a description must be text")
    return str(value).strip()


def _owner(where: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise CatalogError(f"{where}: owner must be text, e.g. data-team")
    return value.strip() or None
