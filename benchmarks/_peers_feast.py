"""Feast side of the training-set benchmark; runs inside benchmarks/.peers/feast, never imports kawa.

Reads JSON on stdin: {"features": Parquet of the daily feature table, "entities": Parquet of
(user_id, event_timestamp, row_id), "repo": an empty folder, "out": Parquet to write, "counts": [...],
"values": [...], "times": {feature: stored time column}}. Registers the table as a Feast FeatureView
over a FileSource (file offline store, no TTL), then times `get_historical_features(...).to_df()`
plus turning the stored last/first event times into "days since" at each row's timestamp (Feast has
no such relative-time aggregation; this is the on-demand step a Feast user would write).
Prints JSON with the seconds and row counts last.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta
from pathlib import Path

DAY_US = 86_400_000_000


def main() -> None:
    import feast
    import numpy as np
    import pandas as pd
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource
    from feast.types import Float64, Int64

    args = json.loads(sys.stdin.read())
    repo = Path(args["repo"])
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "feature_store.yaml").write_text(
        "project: bench\n"
        f"registry: {repo / 'registry.db'}\n"
        "provider: local\n"
        "offline_store:\n  type: file\n"
        f"online_store:\n  type: sqlite\n  path: {repo / 'online.db'}\n"
        "entity_key_serialization_version: 3\n"
    )
    user = Entity(name="user", join_keys=["user_id"])
    source = FileSource(name="rfm_daily", path=args["features"], timestamp_field="event_timestamp")
    stored = args["counts"] + args["values"] + list(args["times"].values())
    schema = [Field(name=f, dtype=Int64 if f in args["counts"] else Float64) for f in stored]
    # ttl=0: every earlier row counts however old, like kawa's all-history features.
    view = FeatureView(
        name="rfm", entities=[user], ttl=timedelta(0), schema=schema, source=source, online=False
    )
    store = FeatureStore(repo_path=str(repo))
    store.apply([user, view])
    entities = pd.read_parquet(args["entities"])
    started = time.perf_counter()
    job = store.get_historical_features(entity_df=entities, features=[f"rfm:{f}" for f in stored])
    df = job.to_df()
    at = df["event_timestamp"].astype("int64").to_numpy()
    if str(df["event_timestamp"].dtype).endswith("[ns, UTC]") or "ns" in str(df["event_timestamp"].dtype):
        at = at // 1000
    for feature, column in args["times"].items():
        df[feature] = (at - df[column].to_numpy(dtype=np.float64)) / DAY_US
    seconds = time.perf_counter() - started
    df.drop(columns=list(args["times"].values())).to_parquet(args["out"])
    print(
        json.dumps(
            {"seconds": seconds, "rows": len(df), "entity_rows": len(entities), "feast": feast.__version__}
        )
    )


if __name__ == "__main__":
    main()
