"""`kawa demo`'s decisions, each run and printed: RFM clusters, recommendations, a segment, a bandit."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from kawa.cli._common import console

if TYPE_CHECKING:
    from kawa.demo.banner import BannerReport
    from kawa.demo.decisions import ClusterReport, RecommendReport, SegmentReport


def show_decisions(folder: Path, url: str, *, day: date, visits: int, seed: int) -> bool:
    """Run the four decision parts against the demo project and the server at `url`; False if one failed."""
    from kawa.demo.banner import run_banner
    from kawa.demo.decisions import enable_decisions, run_recommendations, run_rfm, run_segment_day

    enable_decisions(folder)
    ok = True
    with console.status("clustering buyers in SQL: CREATE OR REPLACE MODEL rfm_cluster (k-means) ..."):
        clusters = run_rfm(folder)
    ok &= print_clusters(clusters, folder)
    with console.status("running the recommendations pipeline: item-to-item CF in the warehouse ..."):
        recs = run_recommendations(folder, url)
    ok &= print_recommendations(recs, folder)
    with console.status(f"delivering the cart_abandonment segment of {day} to a local webhook ..."):
        segment = run_segment_day(folder, day)
    ok &= print_segment(segment, folder)
    with console.status(f"{visits} visits ask the coupon_banner bandit for an offer; clicks reward it ..."):
        banner = run_banner(folder, url, visits=visits, seed=seed)
    ok &= print_banner(banner, folder)
    return ok


def _title(text: str) -> None:
    console.print(f"\n[bold]{text}[/bold]", highlight=False)


def print_clusters(report: ClusterReport, folder: Path) -> bool:
    _title("RFM clusters in SQL (the talk's CREATE MODEL query, k-means over every buyer)")
    if report.error is not None:
        console.print(f"[red]the RFM query failed:[/red] {escape(report.error)}", highlight=False)
        return False
    table = Table(
        "cluster",
        "buyers",
        "spend",
        "orders",
        "last order",
        "loyalty*",
        "persona*",
        title=f"rfm_cluster v{report.version} on {report.training_rows:,} buyers: centroids (ML.CENTROIDS), "
        "sizes (ML.PREDICT)",
        caption="* the shop's hidden truth: mean loyalty level (0-3) and the commonest persona",
    )
    for c in report.clusters:
        table.add_row(
            str(c.centroid_id),
            f"{c.visitors:,}",
            f"{c.monetary:,.0f}",
            f"{c.frequency:.1f}",
            c.last_purchase.isoformat(),
            "" if c.hidden_loyalty is None else f"{c.hidden_loyalty:.2f}",
            c.persona or "",
        )
    console.print(table)
    console.print(
        f'try: cd {folder} && kawa sql "SELECT * FROM ML.CENTROIDS(MODEL rfm_cluster)"  (docs/sql-models.md)',
        highlight=False,
    )
    return True


def print_recommendations(report: RecommendReport, folder: Path) -> bool:
    _title("Recommendations (item-to-item collaborative filtering in DuckDB SQL)")
    if report.status != "succeeded":
        console.print(
            f"[red]the recommendations pipeline {report.status}[/red] (run {report.run_id}):\n"
            f"{escape(report.error or '')}"
        )
        return False
    m = report.metrics
    nan = float("nan")
    users = int(m.get("holdout_users", 0))
    quality = Table(
        "top 10",
        "recall",
        "NDCG",
        "new-item recall",
        "coverage",
        title=f"Next week's purchases of {users:,} shoppers (time-split holdout), @10",
        caption="new-item recall: of items the shopper had not seen; coverage: share of the catalogue shown",
    )
    for label, prefix in (
        ("item-to-item CF", ""),
        ("baseline: popular", "popular_"),
        ("baseline: seen items", "seen_"),
    ):
        quality.add_row(
            label,
            *(
                f"{m.get(prefix + name, nan):.3f}"
                for name in ("recall_at_10", "ndcg_at_10", "new_recall_at_10", "coverage_at_10")
            ),
        )
    console.print(quality)
    if report.user is None:
        console.print("no signed-in shopper has a personal list to show", highlight=False)
        return True
    if report.http_status != 200:
        console.print(
            f"[red]GET /v1/recommendations/{report.user} answered {report.http_status}[/red]", highlight=False
        )
        return False
    tastes = set(report.tastes)
    items = Table("item", "title", "cluster", "score", "via")
    for item in report.items:
        cluster = item.get("cluster") or ""
        items.add_row(
            item["item_id"],
            escape(str(item.get("title") or "")),
            f"[green]{cluster}[/green]" if cluster in tastes else cluster,
            f"{item['score']:.3f}",
            item.get("via") or "",
        )
    console.print(
        f"read over HTTP: GET /v1/recommendations/{report.user}?n={len(report.items)} -> "
        f"{report.source} list; the shopper's hidden tastes: {', '.join(sorted(tastes)) or 'none'} "
        "(green)",
        highlight=False,
    )
    console.print(items)
    console.print(
        f"try: cd {folder} && kawa pipeline run recommendations -p similarity=jaccard", highlight=False
    )
    return True


def print_segment(report: SegmentReport, folder: Path) -> bool:
    before = report.day - timedelta(days=1)
    _title(f"Segment: signed-in users who added to cart on {before}, with no purchase within 24 hours")
    if report.status != "succeeded":
        console.print(
            f"[red]the cart_abandonment segment {report.status or 'did not run'}[/red] "
            f"(run {report.run_id}):\n{escape(report.error or '')}"
        )
        return False
    console.print(
        f"segment cart_abandonment {report.day}: {report.members} members, {report.new} new; "
        f"{report.delivered} delivered in {report.batches} batch(es) to {report.destination} "
        f"(run {report.run_id})",
        highlight=False,
    )
    same = report.received == report.logged and report.repeated == 0
    verdict = "[green]equal[/green]" if same else "[red]NOT equal[/red]"
    console.print(
        f"the webhook receiver took {report.received} members in {report.posts} POST(s); the delivery log "
        f"says this run delivered {report.logged}: {verdict}"
        + (f", {report.repeated} members received twice" if report.repeated else ""),
        highlight=False,
    )
    if report.example is not None:
        console.print(f"one member as the receiver got it: {report.example}", highlight=False)
    console.print(
        f"try: cd {folder} && kawa segments log cart_abandonment --day {report.day}   "
        "(a rerun of the day sends nobody twice)",
        highlight=False,
    )
    return same


def print_banner(report: BannerReport, folder: Path) -> bool:
    from kawa.demo.banner import TRUE_RATES

    _title("Bandit: the coupon banner, rewarded by click events that carry the decision_id")
    if report.error is not None and not report.arms:
        console.print(f"[red]the coupon_banner bandit:[/red] {escape(report.error)}", highlight=False)
        return False
    pulls, rewards = report.counted()
    same = rewards == report.clicks and pulls == len(report.chosen)
    console.print(
        f"{report.visits} visits in {report.seconds:.1f}s: POST /v1/bandits/coupon_banner/choose, then "
        f"{report.events} events through POST /v1/events, {report.clicks} of them banner_click; the bandit "
        f"counted {pulls} pulls and {rewards} rewards (found in the events by kawa serve's reward worker): "
        + ("[green]one per click[/green]" if same else "[red]NOT one per click[/red]"),
        highlight=False,
    )
    table = Table(
        "offer",
        "true rate",
        "pulls",
        "rewards",
        "mean",
        "share",
        title=f"coupon_banner ({report.policy}): counts over every demo run; share of this run's visits",
    )
    for arm in report.arms:
        name = arm["arm"]
        mean = arm["mean_reward"]
        table.add_row(
            name,
            f"{TRUE_RATES[name]:.0%}" if name in TRUE_RATES else "",
            f"{arm['pulls']:,}",
            f"{arm['rewards']:,}",
            "" if mean is None else f"{mean:.3f}",
            f"{report.share(name):.0%}",
        )
    console.print(table)
    last = max(1, report.visits // 3)
    console.print(
        f"the best offer ({report.best}) got {report.share(report.best):.0%} of the visits and "
        f"{report.share(report.best, last):.0%} of the last {last} (an even split gives "
        f"{1 / max(1, len(TRUE_RATES)):.0%})",
        highlight=False,
    )
    if report.error is not None:
        console.print(f"[red]{escape(report.error)}[/red]", highlight=False)
        return False
    console.print(f"try: cd {folder} && kawa bandits show coupon_banner", highlight=False)
    return same
