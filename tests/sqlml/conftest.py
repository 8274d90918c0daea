"""A kawa project with a warehouse and a registry, and small tables with structure a model must find."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kawa import sqlml
from kawa.cli.project import init_project
from kawa.models import Registry
from kawa.runtime import Runtime
from kawa.warehouse import Warehouse
from kawa.warehouse.load import load_file


class Project:
    """A real project folder: its warehouse, its registry, and `sql` as `kawa sql` runs it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config_path, config = init_project(root, "shop")
        self.runtime = Runtime(config)
        self.registry = Registry.from_runtime(self.runtime)
        self.warehouse: Warehouse = self.runtime.warehouse("shop")

    def sql(self, text: str, limit: int | None = None) -> list[dict[str, Any]]:
        return sqlml.run(self.warehouse, self.registry, text, limit=limit).to_pylist()

    def load(self, name: str, table: pa.Table) -> None:
        """Replace warehouse table `name` with `table`, as `kawa load` does."""
        path = self.root / f"{name}.parquet"
        pq.write_table(table, path)
        load_file(self.warehouse, name, path)

    def close(self) -> None:
        self.registry.close()
        self.runtime.close()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    found = Project(tmp_path_factory.mktemp("sqlml"))
    try:
        yield found
    finally:
        found.close()


def blobs(per_cluster: int = 60, seed: int = 1) -> pa.Table:
    """Three planted clusters far apart in (x, y), each mostly of its own channel; `planted` says which."""
    rng = np.random.default_rng(seed)
    centres = {"a": (0.0, 0.0), "b": (10.0, 0.0), "c": (0.0, 10.0)}
    channels = {"a": "web", "b": "app", "c": "mail"}
    rows: dict[str, list[Any]] = {"planted": [], "x": [], "y": [], "channel": []}
    for name, (cx, cy) in centres.items():
        rows["planted"] += [name] * per_cluster
        rows["x"] += list(rng.normal(cx, 0.5, per_cluster))
        rows["y"] += list(rng.normal(cy, 0.5, per_cluster))
        rows["channel"] += [channels[name]] * per_cluster
    return pa.table(rows)


def features(n: int, seed: int) -> tuple[np.random.Generator, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng, rng.normal(size=n), rng.normal(size=n)


def separable(n: int = 400, seed: int = 2) -> pa.Table:
    """Two numbers and a 0/1 `label` that a line separates, with a useless category beside them."""
    rng, x1, x2 = features(n, seed)
    return pa.table(
        {"x1": x1, "x2": x2, "colour": rng.choice(["red", "blue"], n), "label": (x1 + x2 > 0).astype(int)}
    )


def linear(n: int = 300, seed: int = 3) -> pa.Table:
    """`y` = 3 x1 - 2 x2 + 5 plus a little noise."""
    rng, x1, x2 = features(n, seed)
    return pa.table({"x1": x1, "x2": x2, "y": 3 * x1 - 2 * x2 + 5 + rng.normal(0, 0.1, n)})


def quadrants(n: int = 800, seed: int = 4) -> pa.Table:
    """An XOR `label` (no line separates it), a three-class `region`, and a step `level`."""
    rng, x1, x2 = features(n, seed)
    region = np.where(x1 < -0.5, "west", np.where(x1 > 0.5, "east", "middle"))
    return pa.table(
        {
            "x1": x1,
            "x2": x2,
            "label": ((x1 > 0) != (x2 > 0)).astype(int),
            "region": region,
            "level": np.where(x1 * x2 > 0, 10.0, -10.0) + rng.normal(0, 0.1, n),
        }
    )
