"""`kawa demo`: the demo shop sent through the real HTTP collector, and what landed in the warehouse."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
import pyarrow as pa

from kawa.client import EventsClient
from kawa.config import load_config
from kawa.demo.shop import Shop, ShopConfig, generate, iter_ndjson_batches
from kawa.warehouse import Warehouse
from kawa.warehouse.load import write_table

if TYPE_CHECKING:
    from kawa.pipelines import Executor
    from kawa.runtime import Runtime

PROJECT = "shop"


@dataclass
class IngestReport:
    """What `kawa demo` sent and what the warehouse holds afterwards."""

    generated: int
    accepted: int
    rejected: int
    seconds: float
    by_event: list[tuple[str, int]] = field(default_factory=list)
    users: int = 0
    visitors: int = 0
    days: int = 0
    first_day: str = ""
    last_day: str = ""
    truth_tables: list[str] = field(default_factory=list)


def truth_tables(shop: Shop) -> dict[str, pa.Table]:
    """The generator's ground truth as warehouse tables, kept apart from the events for evaluation."""

    def rows(items: list[msgspec.Struct]) -> pa.Table:
        return pa.Table.from_pylist(msgspec.to_builtins(items))

    return {
        "demo_users": rows(shop.users),  # type: ignore[arg-type]
        "demo_items": rows(shop.items),  # type: ignore[arg-type]
        "demo_sellers": rows(shop.sellers),  # type: ignore[arg-type]
        "demo_sessions": rows(shop.sessions),  # type: ignore[arg-type]
    }


def send_shop(
    shop: Shop, url: str, write_key: str, *, progress: Callable[[int], None] | None = None
) -> tuple[int, int, float]:
    """Send every event over HTTP in NDJSON batches of 500; returns (accepted, rejected, seconds)."""
    started = time.perf_counter()
    accepted = rejected = 0
    with EventsClient(url, write_key) as client:
        for body in iter_ndjson_batches(shop, 500):
            answer = client.send_ndjson(body)
            accepted += int(answer["accepted"])
            rejected += int(answer["rejected"])
            if progress is not None:
                progress(body.count(b"\n") + (not body.endswith(b"\n")))
    return accepted, rejected, time.perf_counter() - started


def wait_until_landed(warehouse: Warehouse, expected: int, timeout: float = 120.0) -> int:
    """Wait for the lake writer to publish `expected` distinct demo events; returns how many there are."""
    deadline = time.monotonic() + timeout
    while True:
        count = int(
            warehouse.query("SELECT count(DISTINCT event_id) AS n FROM events").column("n")[0].as_py()
        )
        if count >= expected or time.monotonic() > deadline:
            return count
        time.sleep(0.2)


def ingest_demo(
    folder: Path,
    config: ShopConfig,
    url: str,
    *,
    on_generated: Callable[[Shop], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Generate the shop, send it to the server at `url`, publish the ground truth, and report."""
    settings = load_config(folder / "kawa.yaml")
    keys = settings.projects[PROJECT]
    shop = generate(config)
    if on_generated is not None:
        on_generated(shop)
    accepted, rejected, seconds = send_shop(shop, url, keys.write_key, progress=progress)
    warehouse = Warehouse(settings.state_path / "lake", PROJECT)
    wait_until_landed(warehouse, len(shop.events))
    report = IngestReport(generated=len(shop.events), accepted=accepted, rejected=rejected, seconds=seconds)
    for name, table in truth_tables(shop).items():
        write_table(warehouse, name, table)
        report.truth_tables.append(name)
    counts = warehouse.query(
        "SELECT event_name, count(*) AS n FROM events GROUP BY 1 ORDER BY n DESC"
    ).to_pylist()
    report.by_event = [(r["event_name"], r["n"]) for r in counts]
    who = warehouse.query(
        "SELECT count(DISTINCT keys.user_id) AS users, count(DISTINCT keys.visitor_id) AS visitors, "
        "count(DISTINCT _date) AS days, min(_date)::VARCHAR AS first, max(_date)::VARCHAR AS last FROM events"
    ).to_pylist()[0]
    report.users, report.visitors, report.days = who["users"], who["visitors"], who["days"]
    report.first_day, report.last_day = who["first"], who["last"]
    return report


@dataclass
class LoopReport:
    """What the loyalty pipeline learned and published, and what the product reads back over HTTP."""

    run_id: str
    status: str
    error: str | None
    metrics: dict[str, Any]
    version: int | None
    top_users: list[dict[str, Any]]
    coupon_a: int
    coupon_b: int
    threshold: float
    http_prediction: dict[str, Any] | None
    http_predict: dict[str, Any] | None
    example_user: str | None
    read_key: str


PIPELINES_PY = '''"""The demo project's pipelines: the loyal-customer score template as kawa ships it."""

from kawa.templates.loyalty import loyalty  # noqa: F401
'''


FEATURES_PY = '''"""The demo project's feature views and labels, as the loyalty template uses them."""

from kawa.features.presets import RFM  # noqa: F401
from kawa.templates.loyalty import BOUGHT  # noqa: F401
'''


def demo_executor(runtime: Runtime) -> Executor | None:
    """Where the demo's pipelines run their steps: in this process on embedded stores (quickest);
    `stores.executor: ray` in kawa.yaml sends each to the Ray cluster instead, as `kawa pipeline run` does."""
    from kawa.pipelines import executor_for

    local = runtime.config.stores.executor.strip() in ("", "local")
    return None if local else executor_for(runtime.config)


def run_loyalty(folder: Path, url: str) -> LoopReport:
    """Run the loyalty pipeline in the demo project, then read a score back over HTTP like a product would."""
    from kawa.pipelines import run_pipeline
    from kawa.runtime import Runtime
    from kawa.templates.loyalty import loyalty

    for name, text in (("pipelines.py", PIPELINES_PY), ("features.py", FEATURES_PY)):
        if not (folder / name).exists():
            (folder / name).write_text(text)
    runtime = Runtime(load_config(folder / "kawa.yaml"))
    try:
        record = run_pipeline(
            runtime, loyalty, experiment="demo", project=PROJECT, executor=demo_executor(runtime)
        )
        threshold = float(record.params.get("coupon_threshold", 0.5))
        keys = runtime.config.projects[PROJECT]
        report = LoopReport(
            run_id=record.run_id, status=record.status, error=record.error, metrics=dict(record.metrics),
            version=None, top_users=[], coupon_a=0, coupon_b=0, threshold=threshold, http_prediction=None,
            http_predict=None, example_user=None, read_key=keys.read_key,
        )  # fmt: skip
        if record.status != "succeeded":
            return report
        warehouse = runtime.warehouse(PROJECT)
        latest = "(SELECT max(run_date) FROM loyalty_predictions)"
        top = warehouse.query(
            "SELECT p.user_id, round(p.score, 3) AS score, u.loyalty AS hidden_loyalty, u.persona "
            f"FROM loyalty_predictions p LEFT JOIN demo_users u USING (user_id) WHERE p.run_date = {latest} "
            "ORDER BY p.score DESC LIMIT 5"
        ).to_pylist()
        split = warehouse.query(
            f"SELECT count(*) FILTER (WHERE score >= {threshold}) AS a, "
            f"count(*) FILTER (WHERE score < {threshold}) AS b, max(model_version) AS v "
            f"FROM loyalty_predictions WHERE run_date = {latest}"
        ).to_pylist()[0]
        report.top_users, report.coupon_a, report.coupon_b, report.version = (
            top,
            split["a"],
            split["b"],
            split["v"],
        )
        if top:
            report.example_user = top[0]["user_id"]
            headers = {"Authorization": f"Bearer {keys.read_key}"}
            got = httpx.get(
                f"{url}/v1/predictions/loyalty/{report.example_user}", headers=headers, timeout=30
            )
            report.http_prediction = got.json() if got.status_code == 200 else None
            row = warehouse.query(
                "SELECT * EXCLUDE (user_id, cutoff) FROM loyalty_features "
                f"WHERE user_id = '{report.example_user}'"
            ).to_pylist()[0]
            sent = httpx.post(f"{url}/v1/models/loyalty/predict", json=row, headers=headers, timeout=30)
            report.http_predict = sent.json() if sent.status_code == 200 else None
        return report
    finally:
        runtime.close()


INTENT_IMPORT = "from kawa.templates.intent import intent, intent_on_view, session_pages  # noqa: F401\n"


@dataclass
class IntentReport:
    """What the purchase-intent pipeline learned: the sequence model against its bag-of-pages baseline."""

    run_id: str
    status: str
    error: str | None
    metrics: dict[str, Any]
    version: int | None


def has_events(folder: Path) -> bool:
    """Whether the demo project's lake already holds events (a replay can start without ingesting)."""
    settings = load_config(folder / "kawa.yaml")
    warehouse = Warehouse(settings.state_path / "lake", PROJECT)
    if "events" not in warehouse.tables():
        return False
    return bool(warehouse.query("SELECT count(*) AS n FROM events").column("n")[0].as_py())


def enable_intent(folder: Path) -> None:
    """Add the purchase-intent pipeline, streaming view and trigger to the demo project's pipelines.py."""
    path = folder / "pipelines.py"
    text = path.read_text() if path.exists() else PIPELINES_PY
    if INTENT_IMPORT not in text:
        path.write_text(text.rstrip("\n") + "\n" + INTENT_IMPORT)


def run_intent(folder: Path) -> IntentReport:
    """Train the purchase-intent sequence model in the demo project; promoted if it beats the baseline."""
    from kawa.models import Registry
    from kawa.pipelines import run_pipeline
    from kawa.runtime import Runtime
    from kawa.templates.intent import MODEL, intent

    runtime = Runtime(load_config(folder / "kawa.yaml"))
    try:
        record = run_pipeline(runtime, intent, experiment="demo", project=PROJECT)
        version = None
        if record.status == "succeeded":
            try:
                version = Registry.from_runtime(runtime).resolve(PROJECT, MODEL, "production")
            except LookupError:
                version = None
        return IntentReport(record.run_id, record.status, record.error, dict(record.metrics), version)
    finally:
        runtime.close()
