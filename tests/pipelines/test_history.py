"""Paging through runs by keyset (before/after a run), with totals and positions; experiments."""

from __future__ import annotations

import pytest

from kawa.pipelines import RunStore
from kawa.pipelines.history import experiments, run_page
from kawa.runtime import Runtime


def _create(store: RunStore, n: int, pipeline: str = "daily", experiment: str = "dev") -> list[str]:
    ids = []
    for i in range(n):
        record = store.create(
            project="shop",
            pipeline=pipeline,
            experiment=experiment,
            kind="manual",
            params={"i": i},
            logical_date=None,
            steps=[("only", {})],
        )
        ids.append(record.run_id)
    return ids


def test_pages_walk_older_and_back_newer_without_gaps_or_repeats(runtime: Runtime) -> None:
    store = RunStore(runtime.metadata)
    ids = _create(store, 7)
    _create(store, 2, pipeline="other")
    newest_first = list(reversed(ids))

    first = run_page(runtime.metadata, "shop", pipeline="daily", limit=3)
    assert [r.run_id for r in first.runs] == newest_first[:3]
    assert (first.total, first.position, first.first, first.last) == (7, 0, 1, 3)
    assert first.newer is None and first.older == newest_first[2]

    second = run_page(runtime.metadata, "shop", pipeline="daily", before=first.older, limit=3)
    assert [r.run_id for r in second.runs] == newest_first[3:6]
    assert (second.position, second.first, second.last) == (3, 4, 6)
    assert second.newer == newest_first[3] and second.older == newest_first[5]

    last = run_page(runtime.metadata, "shop", pipeline="daily", before=second.older, limit=3)
    assert [r.run_id for r in last.runs] == newest_first[6:]
    assert last.older is None and last.position == 6

    back = run_page(runtime.metadata, "shop", pipeline="daily", after=last.newer, limit=3)
    assert [r.run_id for r in back.runs] == newest_first[3:6]
    # Near the top, "newer" gives the full newest page rather than a short one.
    top = run_page(runtime.metadata, "shop", pipeline="daily", after=newest_first[1], limit=3)
    assert [r.run_id for r in top.runs] == newest_first[:3] and top.newer is None


def test_filters_and_cursors(runtime: Runtime) -> None:
    store = RunStore(runtime.metadata)
    _create(store, 2, experiment="dev")
    prod = _create(store, 1, experiment="prod")
    page = run_page(runtime.metadata, "shop", experiment="prod")
    assert [r.run_id for r in page.runs] == prod and page.total == 1
    assert run_page(runtime.metadata, "elsewhere").total == 0
    with pytest.raises(LookupError, match="to page from"):
        run_page(runtime.metadata, "shop", before="0" * 20)
    with pytest.raises(LookupError):  # a cursor of another project is unknown here
        run_page(runtime.metadata, "elsewhere", before=prod[0])
    with pytest.raises(ValueError, match="not both"):
        run_page(runtime.metadata, "shop", before=prod[0], after=prod[0])


def test_experiments_are_listed_once_each(runtime: Runtime) -> None:
    store = RunStore(runtime.metadata)
    _create(store, 2, experiment="dev")
    _create(store, 1, experiment="a-b test")
    assert experiments(runtime.metadata, "shop") == ["a-b test", "dev"]
    assert experiments(runtime.metadata, "elsewhere") == []
