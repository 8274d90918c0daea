"""RFM clusters: buyers grouped by recency, frequency and spend with k-means, trained in SQL.

Steps: `CREATE OR REPLACE MODEL rfm_cluster OPTIONS (model_type = 'kmeans', ...) AS SELECT ...` over
each buyer's spend (monetary), number of purchases (frequency) and last purchase day (recency), run by
kawa.sqlml (docs/sql-models.md) as the source talk wrote it, but one row per user instead of per
visitor, and spend and purchase counts as logs (`INPUTS_SQL`) -> the new version is promoted to
`promote_to`, so serving follows it -> ML.PREDICT gives every buyer a cluster: the `rfm_clusters`
table (user_id, cluster, monetary, frequency, recency), `rfm_profiles` (each cluster's size, mean
spend and purchases, range of last purchase days) and each user's cluster in the prediction store
(model `rfm_cluster`, `GET /v1/predictions/rfm_cluster/USER`).

Evaluation: the Davies-Bouldin index of the clustering; on the demo shop also how much of the users'
hidden loyalty score the clusters explain (eta squared: between-cluster share of its variance), next
to the baseline of as many spend quantiles (monetary alone, NTILE).

Adapt it by editing `RFM_SQL` (what a purchase and its value are) and the parameters; run it with
`kawa pipeline run rfm` (e.g. `-p num_clusters=5`).
"""

from __future__ import annotations

from typing import Any

from kawa.pipelines import Pipeline, RunContext, step
from kawa.serving.store import Prediction, PredictionStore, now_rfc3339
from kawa.templates.catalog import Template

MODEL = "rfm_cluster"

# One row per buyer: the id, then spend, number of purchases and the day of the last one.
RFM_SQL = """
SELECT keys.user_id AS user_id, SUM(revenue) AS monetary, COUNT(*) AS frequency, MAX(_date) AS recency
FROM events
WHERE event_name = 'purchase' AND keys.user_id IS NOT NULL
GROUP BY keys.user_id
"""
# What k-means sees. Spend and purchase counts are skewed (a few big spenders); on their raw values
# those few get clusters of their own, on their logs the clusters split the many ordinary buyers too.
INPUTS = ("log_monetary", "log_frequency", "recency")
INPUTS_SQL = f"""
SELECT *, ln(1 + monetary) AS log_monetary, ln(frequency) AS log_frequency FROM ({RFM_SQL})
"""


def create_model_sql(num_clusters: int) -> str:
    """The talk's CREATE MODEL statement over `INPUTS_SQL`."""
    return f"""CREATE OR REPLACE MODEL {MODEL}
  OPTIONS (model_type = 'kmeans', num_clusters = {int(num_clusters)}, standardize_features = TRUE) AS
SELECT {", ".join(INPUTS)} FROM ({INPUTS_SQL})"""


@step
def clustered(ctx: RunContext, num_clusters: int, promote_to: str) -> dict[str, Any]:
    """Train the k-means model in SQL; a new version of rfm_cluster, promoted to `promote_to`."""
    from kawa import sqlml

    [made] = sqlml.run(ctx.warehouse, ctx.registry, create_model_sql(num_clusters)).to_pylist()
    version = int(made["version"])
    evaluate = f"SELECT * FROM ML.EVALUATE(MODEL {MODEL})"
    [quality] = sqlml.run(ctx.warehouse, ctx.registry, evaluate).to_pylist()
    if promote_to:
        ctx.registry.promote(ctx.project, MODEL, version, promote_to)
    ctx.outputs["model"] = {"name": MODEL, "version": version}
    ctx.log_metric("buyers", made["training_rows"])
    for name in ("davies_bouldin_index", "mean_squared_distance"):
        if isinstance(quality.get(name), float):
            ctx.log_metric(name, quality[name])
    return {"version": version, "buyers": made["training_rows"]}


@step
def assigned(ctx: RunContext, clustered: dict[str, Any], num_clusters: int) -> dict[str, Any]:
    """Every buyer's cluster: write rfm_clusters and rfm_profiles; compare with spend quantiles."""
    from kawa import sqlml

    members = sqlml.run(
        ctx.warehouse,
        ctx.registry,
        f"SELECT user_id, centroid_id AS cluster, monetary, frequency, recency "
        f"FROM ML.PREDICT(MODEL {MODEL}, ({INPUTS_SQL})) ORDER BY user_id",
    )
    ctx.write_table("rfm_clusters", members)
    profiles = ctx.warehouse.query(
        "SELECT cluster, count(*) AS users, avg(monetary) AS monetary, avg(frequency) AS frequency, "
        "min(recency) AS first_recency, max(recency) AS last_recency "
        "FROM rfm_clusters GROUP BY cluster ORDER BY monetary DESC"
    )
    ctx.write_table("rfm_profiles", profiles)
    ctx.log_metric("clusters", profiles.num_rows)
    explained = _loyalty_explained(ctx, num_clusters)
    if explained is not None:
        ctx.log_metric("loyalty_explained", explained["clusters"])
        ctx.log_metric("baseline_loyalty_explained", explained["spend_quantiles"])
        print(
            f"share of the hidden loyalty score's variance explained: {explained['clusters']:.3f} by the "
            f"{num_clusters} RFM clusters, {explained['spend_quantiles']:.3f} by {num_clusters} spend "
            "quantiles (the baseline)"
        )
    for p in profiles.to_pylist():
        print(
            f"cluster {p['cluster']}: {p['users']} buyers, spend {p['monetary']:.2f}, {p['frequency']:.1f} "
            f"purchases, last purchase {p['first_recency']} to {p['last_recency']}"
        )
    return {"users": members.num_rows, "version": clustered["version"]}


def _loyalty_explained(ctx: RunContext, groups: int) -> dict[str, float] | None:
    """Eta squared of the demo shop's hidden loyalty score by cluster and by spend quantile."""
    if "demo_users" not in ctx.warehouse.tables():
        return None
    [row] = ctx.warehouse.query(
        f"""
        WITH u AS (
            SELECT c.cluster, ntile({int(groups)}) OVER (ORDER BY c.monetary) AS quantile,
                   d.loyalty_score AS y
            FROM rfm_clusters c JOIN demo_users d USING (user_id)
        ),
        total AS (SELECT avg(y) AS mean, var_pop(y) * count(*) AS ss FROM u),
        by_cluster AS (
            SELECT count(*) * (avg(y) - any_value(total.mean)) ^ 2 AS ss FROM u, total GROUP BY cluster
        ),
        by_quantile AS (
            SELECT count(*) * (avg(y) - any_value(total.mean)) ^ 2 AS ss FROM u, total GROUP BY quantile
        )
        SELECT (SELECT sum(ss) FROM by_cluster) / nullif(total.ss, 0) AS clusters,
               (SELECT sum(ss) FROM by_quantile) / nullif(total.ss, 0) AS spend_quantiles
        FROM total
        """
    ).to_pylist()
    if row["clusters"] is None or row["spend_quantiles"] is None:
        return None
    return {"clusters": float(row["clusters"]), "spend_quantiles": float(row["spend_quantiles"])}


@step(cache=False)
def published(ctx: RunContext, assigned: dict[str, Any]) -> dict[str, int]:
    """Each buyer's cluster to the prediction store (`GET /v1/predictions/rfm_cluster/USER`)."""
    rows = ctx.read_table("rfm_clusters")
    now = now_rfc3339()
    version = assigned["version"]
    written = PredictionStore(ctx.online).put_many(
        ctx.project,
        MODEL,
        ((user, Prediction(score=cluster, model_version=version, computed_at=now))
         for user, cluster in zip(rows.column("user_id").to_pylist(), rows.column("cluster").to_pylist(),
                                  strict=True)),
    )  # fmt: skip
    ctx.log_metric("published_users", written)
    return {"users": written}


rfm = Pipeline(
    "rfm",
    steps=[clustered, assigned, published],
    params={"num_clusters": 4, "promote_to": "production"},
    description="RFM k-means clusters of buyers (CREATE MODEL ... kmeans in SQL), one cluster per user",
)

TEMPLATE = Template(
    name="rfm",
    summary="k-means clusters of buyers by recency, frequency and spend, trained with CREATE MODEL in SQL",
    pipelines=("rfm",),
)
