"""Shared data for the model tests: a small customer table whose label depends on every kind of column."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from kawa.models import Registry
from kawa.stores.artifacts import ArtifactStore, open_artifacts
from kawa.stores.metadata import MetadataStore, open_metadata

START = datetime(2025, 1, 1, tzinfo=UTC)


def customers(n: int = 3000, seed: int = 0) -> pa.Table:
    """Customers with a number (some missing), two categories (one with nulls), a flag, a date-time,
    and `bought`, which depends on all of them."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n).astype(float)
    age[rng.random(n) < 0.1] = np.nan
    gender = rng.choice(np.array(["male", "female", None], dtype=object), n, p=[0.45, 0.45, 0.1])
    media = rng.choice(["Twitter", "TV", "Search", "Mail"], n, p=[0.4, 0.3, 0.2, 0.1])
    recency = rng.exponential(10.0, n)
    vip = rng.random(n) < 0.2
    hours = rng.integers(0, 8000, n)
    signup = [START + timedelta(hours=int(h)) for h in hours]
    logit = (
        -1.0
        + 0.03 * np.nan_to_num(age, nan=45.0)
        - 0.12 * recency
        + 1.2 * (media == "Twitter")
        + 0.8 * vip
        + 0.4 * (gender == "female")
        + 0.5 * (hours > 4000)
    )
    bought = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    return pa.table(
        {
            "age": age,
            "gender": pa.array(gender, pa.string()),
            "media": media,
            "recency_days": recency,
            "vip": vip,
            "signup": pa.array(signup, pa.timestamp("us", "UTC")),
            "bought": bought,
        }
    )


@pytest.fixture(scope="session")
def table() -> pa.Table:
    return customers()


@pytest.fixture
def metadata(tmp_path: Path) -> Iterator[MetadataStore]:
    with open_metadata("sqlite", tmp_path / "state") as store:
        yield store


@pytest.fixture
def artifacts(tmp_path: Path) -> Iterator[ArtifactStore]:
    with open_artifacts("local", tmp_path / "state") as store:
        yield store


@pytest.fixture
def registry(metadata: MetadataStore, artifacts: ArtifactStore) -> Iterator[Registry]:
    with Registry(metadata, artifacts) as registry:
        yield registry
