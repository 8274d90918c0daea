"""A demo shop written straight into a test project's warehouse, with the truth tables a template reads."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from kawa.config import Config
from kawa.demo.run import truth_tables
from kawa.demo.shop import Shop
from kawa.runtime import Runtime
from kawa.warehouse.load import write_table
from tests.features._events import events_table, write_events


@contextmanager
def shop_project(root: Path, shop: Shop, *, truth: Sequence[str] = (), code: str = "") -> Iterator[Runtime]:
    """A runtime for project "shop" in `root` holding the events of the generated `shop` and its `truth`
    tables (e.g. "demo_items"); `code` becomes its pipelines.py (segments are found there, as `kawa
    segments run` does)."""
    if code:
        (root / "pipelines.py").write_text(code)
    rt = Runtime(Config(project="shop", root=str(root)))
    try:
        write_events(rt.warehouse(), events_table(shop.events))
        tables = truth_tables(shop) if truth else {}
        for name in truth:
            write_table(rt.warehouse(), name, tables[name])
        yield rt
    finally:
        rt.close()
