"""A demo shop written straight into a test project's warehouse, with the truth tables a template reads."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from kawa.config import Config
from kawa.demo import ShopConfig, generate
from kawa.demo.run import truth_tables
from kawa.runtime import Runtime
from kawa.warehouse.load import write_table
from tests.features._events import events_table, write_events


@contextmanager
def shop_project(
    root: Path, shop: ShopConfig, events: Sequence[dict], *, truth: Sequence[str] = (), code: str = ""
) -> Iterator[Runtime]:
    """A runtime for project "shop" in `root` holding `events` and the `truth` tables (e.g. "demo_items")
    of `shop`; `code` becomes its pipelines.py (segments are found there, as `kawa segments run` does)."""
    if code:
        (root / "pipelines.py").write_text(code)
    rt = Runtime(Config(project="shop", root=str(root)))
    try:
        write_events(rt.warehouse(), events_table(events))
        tables = truth_tables(generate(shop)) if truth else {}
        for name in truth:
            write_table(rt.warehouse(), name, tables[name])
        yield rt
    finally:
        rt.close()
