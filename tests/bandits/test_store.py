"""The decision store when PostgreSQL goes away: a MetadataError to retry (the API's 503), not a crash."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from kawa.bandits import Bandit
from kawa.bandits.store import BanditStore
from kawa.stores.metadata import MetadataError, open_metadata
from tests.services.postgres import PostgresServer

pytest_plugins = ["tests.services.postgres"]


def test_an_unreachable_postgresql_is_a_metadata_error_to_retry(
    postgres: PostgresServer, postgres_url: str, tmp_path: Path
) -> None:
    bandit = Bandit("ranking", arms=["a", "b"])
    database = postgres_url.rsplit("/", 1)[1]
    with open_metadata(postgres_url, tmp_path) as metadata:
        store = BanditStore(metadata)
        store.decide("shop", bandit, "", "u1", random.Random(0))
        # As a server that went down would: its connections are cut and new ones refused.
        postgres.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false')
        try:
            postgres.execute(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'"
            )
            with pytest.raises(
                MetadataError, match=r"cannot be reached: .*not currently accepting connections"
            ):
                store.decide("shop", bandit, "", "u2", random.Random(0))
        finally:
            postgres.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true')
        store.decide("shop", bandit, "", "u3", random.Random(0))
        assert sorted(d.user_id or "" for d in store.decisions("shop", "ranking")) == ["u1", "u3"]
