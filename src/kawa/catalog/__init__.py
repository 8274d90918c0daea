"""The data catalog: table and column docs kept in `catalog/*.yaml`, merged with the live warehouse.

`build_catalog(root, warehouse, graph=...)` gives every table with its columns, docs, owners and
lineage, plus a report of undocumented and vanished tables and columns; `write_markdown` turns it
into pages. `kawa catalog` and `GET /v1/catalog` are its faces.
"""

from __future__ import annotations

from kawa.catalog.catalog import Catalog, CatalogColumn, CatalogTable, build_catalog
from kawa.catalog.docs import CatalogError, ColumnDoc, TableDoc, load_docs
from kawa.catalog.markdown import write_markdown

__all__ = [
    "Catalog",
    "CatalogColumn",
    "CatalogError",
    "CatalogTable",
    "ColumnDoc",
    "TableDoc",
    "build_catalog",
    "load_docs",
    "write_markdown",
]
