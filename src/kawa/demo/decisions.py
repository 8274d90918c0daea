"""`kawa demo`'s decisions on the shop: RFM clusters in SQL, recommendations, a cart-abandonment segment.

The demo project declares them in its pipelines.py (`DEMO_PIPELINES_PY`), as a user's project would; the
coupon banner bandit declared there is driven by `kawa.demo.banner`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

from kawa.config import load_config
from kawa.demo.run import PIPELINES_PY, PROJECT, demo_executor

WEBHOOK_ENV = "KAWA_DEMO_WEBHOOK"
SEGMENT = "cart_abandonment"
BANNER = "coupon_banner"
BANNER_ARMS = ("free_shipping", "ten_percent", "gift_wrap")
DECISIONS_MARKER = "# kawa demo: decisions"
_IMPORTS = """import os

from kawa.bandits import Bandit, Thompson
from kawa.segments import Segment, Webhook
from kawa.templates.recommend import recommendations  # noqa: F401
"""
_DECLARATIONS = f'''
# Signed-in users who added to cart on the day before, and bought nothing in the 24 hours after: new
# members on the day their 24 hours ran out. `kawa demo` points the webhook at a receiver of its own.
{SEGMENT} = Segment(
    "{SEGMENT}",
    """
    SELECT c.keys.user_id AS user_id, arg_max(c.item_id, c.sync_date) AS item_id,
           count(DISTINCT c.item_id) AS items, max(c.sync_date) AS added_at
    FROM events c
    WHERE c.event_name = 'cart_add' AND c.keys.user_id IS NOT NULL AND c._date = $day - 1
      AND c.sync_date <= $logical_date - INTERVAL 24 HOURS
      AND NOT EXISTS (
        SELECT 1 FROM events p
        WHERE p.event_name = 'purchase' AND p.keys.user_id = c.keys.user_id
          AND p.sync_date BETWEEN c.sync_date AND c.sync_date + INTERVAL 24 HOURS
      )
    GROUP BY 1
    ORDER BY user_id
    """,
    destination=Webhook(
        os.environ.get("{WEBHOOK_ENV}", "http://127.0.0.1:8643/cart-abandonment"), batch_size=20
    ),
)

# A coupon banner on the home page: which offer gets clicked? A click event carrying the decision_id
# rewards the arm; the banner_view sent with every decision does not.
{BANNER} = Bandit(
    "{BANNER}",
    arms={json.dumps(BANNER_ARMS)},
    policy=Thompson(),
    reward_on={{"event_name": "banner_click"}},
    window="1h",
)
'''
_MARKED = f"\n{DECISIONS_MARKER} (docs/recommendations.md, docs/segments.md, docs/bandits.md)\n"
# pipelines.py of a new demo project: the loyalty part's file with the decisions (the RFM model is made
# in SQL and lives in the registry).
DEMO_PIPELINES_PY = f'''"""The demo project's pipelines: the loyalty and recommendations templates as kawa
ships them, a cart-abandonment segment and a coupon banner bandit."""

import os

from kawa.bandits import Bandit, Thompson
from kawa.segments import Segment, Webhook
from kawa.templates.loyalty import loyalty  # noqa: F401
from kawa.templates.recommend import recommendations  # noqa: F401
{_MARKED}{_DECLARATIONS}'''


RFM_MODEL = "rfm_cluster"
# The source talk's query; only the purchase event's name is the demo shop's ('buy' in the talk).
RFM_SQL = f"""CREATE OR REPLACE MODEL {RFM_MODEL}
  OPTIONS (model_type = 'kmeans', num_clusters = 4, standardize_features = TRUE) AS
SELECT * FROM (SELECT SUM(revenue) monetary, COUNT(*) frequency, MAX(_date) recency
               FROM events WHERE event_name = 'purchase' GROUP BY keys.visitor_id)"""
CLUSTERS_SQL = f"""
SELECT p.centroid_id, count(*) AS visitors, avg(u.loyalty) AS hidden_loyalty, mode(u.persona) AS persona
FROM ML.PREDICT(MODEL {RFM_MODEL},
       (SELECT keys.visitor_id AS visitor_id, SUM(revenue) monetary, COUNT(*) frequency, MAX(_date) recency
        FROM events WHERE event_name = 'purchase' GROUP BY keys.visitor_id)) p
LEFT JOIN (SELECT unnest(visitor_ids) AS visitor_id, loyalty, persona FROM demo_users) u USING (visitor_id)
GROUP BY 1 ORDER BY 1"""
CENTROIDS_SQL = f"SELECT centroid_id, feature, numerical_value FROM ML.CENTROIDS(MODEL {RFM_MODEL})"
_EPOCH = date(1970, 1, 1)


def enable_decisions(folder: Path) -> None:
    """Declare the recommendations pipeline, the segment and the bandit in the demo's pipelines.py.

    The file as the loyalty part wrote it is replaced; one edited since gets the declarations at its end.
    """
    path = folder / "pipelines.py"
    text = path.read_text() if path.exists() else PIPELINES_PY
    if DECISIONS_MARKER in text:
        return
    if text == PIPELINES_PY:
        path.write_text(DEMO_PIPELINES_PY)
    else:
        path.write_text(text.rstrip("\n") + "\n" + _MARKED + _IMPORTS + _DECLARATIONS)


@dataclass
class Cluster:
    """One k-means cluster of buyers: its size, its centroid, and the shop's hidden truth about it."""

    centroid_id: int
    visitors: int
    monetary: float
    frequency: float
    last_purchase: date
    hidden_loyalty: float | None
    persona: str | None


@dataclass
class ClusterReport:
    """What `CREATE MODEL rfm_cluster` trained, and the clusters ML.PREDICT and ML.CENTROIDS show."""

    sql: str
    version: int | None = None
    training_rows: int = 0
    clusters: list[Cluster] = field(default_factory=list)
    error: str | None = None


def run_rfm(folder: Path) -> ClusterReport:
    """Cluster the shop's buyers by recency, frequency and spend with the talk's CREATE MODEL query."""
    from kawa import sqlml
    from kawa.models import Registry
    from kawa.runtime import Runtime
    from kawa.warehouse import SQLError

    runtime = Runtime(load_config(folder / "kawa.yaml"))
    report = ClusterReport(sql=RFM_SQL)
    try:
        with Registry.from_runtime(runtime) as registry:
            warehouse = runtime.warehouse(PROJECT)
            [made] = sqlml.run(warehouse, registry, RFM_SQL).to_pylist()
            report.version, report.training_rows = made["version"], made["training_rows"]
            sizes = sqlml.run(warehouse, registry, CLUSTERS_SQL).to_pylist()
            centroids: dict[tuple[int, str], float] = {
                (r["centroid_id"], r["feature"]): r["numerical_value"]
                for r in sqlml.run(warehouse, registry, CENTROIDS_SQL).to_pylist()
            }
    except SQLError as exc:
        report.error = str(exc)
        return report
    finally:
        runtime.close()
    for row in sizes:
        c = row["centroid_id"]
        report.clusters.append(
            Cluster(
                centroid_id=c,
                visitors=row["visitors"],
                monetary=centroids[c, "monetary"],
                frequency=centroids[c, "frequency"],
                last_purchase=_EPOCH + timedelta(days=round(centroids[c, "recency"])),
                hidden_loyalty=row["hidden_loyalty"],
                persona=row["persona"],
            )
        )
    report.clusters.sort(key=lambda c: -c.monetary)
    return report


@dataclass
class RecommendReport:
    """The recommendations pipeline's holdout figures, and one user's list read over HTTP."""

    run_id: str
    status: str
    error: str | None
    metrics: dict[str, float]
    user: str | None = None
    tastes: list[str] = field(default_factory=list)  # the user's hidden home clusters
    http_status: int | None = None
    source: str | None = None  # personal | popular, as the API answered
    items: list[dict[str, Any]] = field(default_factory=list)


def run_recommendations(folder: Path, url: str, *, n: int = 5) -> RecommendReport:
    """Run the recommendations pipeline, then read one shopper's list with GET /v1/recommendations."""
    from kawa.pipelines import run_pipeline
    from kawa.runtime import Runtime
    from kawa.templates.recommend import recommendations

    config = load_config(folder / "kawa.yaml")
    runtime = Runtime(config)
    try:
        executor = demo_executor(runtime)
        record = run_pipeline(runtime, recommendations, experiment="demo", project=PROJECT, executor=executor)
        report = RecommendReport(record.run_id, record.status, record.error, dict(record.metrics))
        if record.status != "succeeded":
            return report
        warehouse = runtime.warehouse(PROJECT)
        # The signed-in shopper with the most personal (not popular) items: a list worth reading.
        found = warehouse.query(
            "SELECT r.user_id, any_value(u.home_clusters) AS tastes FROM user_recommendations r "
            "JOIN demo_users u USING (user_id) WHERE r.via <> 'popular' AND NOT u.is_bot "
            "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
        ).to_pylist()
        if not found:
            return report
        report.user, report.tastes = found[0]["user_id"], list(found[0]["tastes"] or [])
        got = httpx.get(
            f"{url}/v1/recommendations/{report.user}",
            params={"n": n},
            headers={"Authorization": f"Bearer {config.projects[PROJECT].read_key}"},
            timeout=30,
        )
        report.http_status = got.status_code
        if got.status_code != 200:
            return report
        answer = got.json()
        report.source = answer["source"]
        items = answer["items"]
        ids = ", ".join("'" + str(i["item_id"]).replace("'", "''") + "'" for i in items) or "NULL"
        about = {
            r["item_id"]: r
            for r in warehouse.query(
                f"SELECT item_id, title, cluster FROM demo_items WHERE item_id IN ({ids})"
            ).to_pylist()
        }
        for item in items:
            known = about.get(item["item_id"], {})
            report.items.append({**item, "title": known.get("title"), "cluster": known.get("cluster")})
        return report
    finally:
        runtime.close()


@dataclass
class SegmentReport:
    """A cart-abandonment run for one day: what the run counted, the delivery log, and the receiver."""

    day: date
    run_id: str = ""
    status: str = ""
    error: str | None = None
    members: int = 0
    new: int = 0
    delivered: int = 0
    batches: int = 0
    logged: int = 0  # members the delivery log says this run delivered
    received: int = 0  # members in the batches the receiver took (each batch id once)
    posts: int = 0  # POSTs the receiver answered
    repeated: int = 0  # members the receiver saw in more than one batch
    example: dict[str, Any] | None = None
    destination: str = ""


def run_segment_day(folder: Path, day: date) -> SegmentReport:
    """Deliver the cart-abandonment segment of `day` to a webhook receiver on 127.0.0.1, and compare."""
    from kawa.demo._receiver import WebhookReceiver
    from kawa.runtime import Runtime
    from kawa.segments import DeliveryLog, find_segment, run_segment

    config = load_config(folder / "kawa.yaml")
    report = SegmentReport(day=day)
    runtime = Runtime(config)
    before = os.environ.get(WEBHOOK_ENV)
    try:
        with WebhookReceiver("/cart-abandonment") as receiver:
            # The project's code reads the URL when it is loaded: by find_segment and the run's step,
            # which runs in this process (also on Ray) as the receiver listens on this machine's loopback.
            os.environ[WEBHOOK_ENV] = receiver.url
            segment = find_segment(config, SEGMENT)
            record = run_segment(runtime, segment, day=day)
            report.posts = receiver.posts
            members = receiver.members(segment.entity)
            report.example = receiver.first_member()
        report.destination = segment.destination.describe()
        report.run_id, report.status, report.error = record.run_id, record.status, record.error
        m = record.metrics
        report.members, report.new = int(m.get("members") or 0), int(m.get("new") or 0)
        report.delivered, report.batches = int(m.get("delivered") or 0), int(m.get("batches") or 0)
        rows, _ = DeliveryLog(runtime.metadata).entries(
            PROJECT, segment=SEGMENT, day=day, status="delivered", limit=None
        )
        report.logged = sum(1 for r in rows if r.run_id == record.run_id)
        report.received = len(members)
        report.repeated = len(members) - len(set(members))
        return report
    finally:
        if before is None:
            os.environ.pop(WEBHOOK_ENV, None)
        else:
            os.environ[WEBHOOK_ENV] = before
        runtime.close()
