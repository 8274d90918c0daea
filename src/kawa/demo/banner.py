"""`kawa demo`'s coupon banner: simulated visits ask the bandit for an arm, and their clicks reward it.

Each visit is a demo user who sees the banner: `POST /v1/bandits/coupon_banner/choose` (read key) picks
the offer, and the visit sends `banner_view` with the decision_id through `POST /v1/events` (write key),
plus `banner_click` when the simulated user clicks, with each offer's true click rate and a fixed seed.
Only the click matches the bandit's `reward_on`: `kawa serve`'s reward worker counts it, with no reward
call, and the next choices lean towards the offer that gets clicked.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from kawa.config import load_config
from kawa.demo.decisions import BANNER
from kawa.demo.run import PROJECT
from kawa.warehouse import Warehouse

# The offers' true click rates: the bandit does not know them, it finds the best one by showing it.
TRUE_RATES = {"free_shipping": 0.12, "ten_percent": 0.07, "gift_wrap": 0.03}


@dataclass
class BannerReport:
    """What the visits did and what the bandit counted: per arm before and after, and the traffic split."""

    visits: int
    clicks: int = 0
    events: int = 0  # events the collector accepted (a view per visit, a click per click)
    rejected: int = 0
    chosen: list[str] = field(default_factory=list)  # the arm of each visit, in order
    before: dict[str, tuple[int, int]] = field(default_factory=dict)  # arm -> (pulls, rewards)
    arms: list[dict[str, Any]] = field(default_factory=list)  # GET /v1/bandits/{name}'s arms, after
    policy: str = ""
    caught_up: bool = False
    seconds: float = 0.0
    waited: float = 0.0  # seconds from the last event sent until the reward worker had read it
    error: str | None = None

    @property
    def best(self) -> str:
        return max(TRUE_RATES, key=TRUE_RATES.__getitem__)

    def share(self, arm: str, last: int | None = None) -> float:
        """The share of visits (of the last `last` visits) that were shown `arm`."""
        picked = self.chosen[-last:] if last else self.chosen
        return picked.count(arm) / len(picked) if picked else 0.0

    def counted(self) -> tuple[int, int]:
        """(pulls, rewards) the bandit counted during this run: after minus before."""
        pulls = sum(a["pulls"] for a in self.arms) - sum(p for p, _ in self.before.values())
        rewards = sum(a["rewards"] for a in self.arms) - sum(r for _, r in self.before.values())
        return pulls, rewards


def run_banner(
    folder: Path, url: str, *, visits: int = 300, seed: int = 7, timeout: float = 60.0
) -> BannerReport:
    """Simulate `visits` visits of the shop's users to the coupon banner; wait until rewards are counted."""
    config = load_config(folder / "kawa.yaml")
    keys = config.projects[PROJECT]
    rng = random.Random(seed)
    users = _users(Warehouse(config.state_path / "lake", PROJECT))
    report = BannerReport(visits=visits)
    if not users:
        report.error = "demo_users is empty or missing: run kawa demo without --url first to load the shop"
        return report
    read = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {keys.read_key}"}, timeout=30)
    write = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {keys.write_key}"}, timeout=30)
    started = time.perf_counter()
    try:
        found = read.get(f"/v1/bandits/{BANNER}")
        if found.status_code != 200:
            report.error = f"GET /v1/bandits/{BANNER} answered {found.status_code}: {found.text[:300]}"
            return report
        report.policy = found.json()["policy"]["name"]
        report.before = {a["arm"]: (a["pulls"], a["rewards"]) for a in found.json()["arms"]}
        for visit in range(visits):
            user = rng.choice(users)
            chose = read.post(f"/v1/bandits/{BANNER}/choose", json={"user_id": user})
            if chose.status_code != 200:
                report.error = f"choose answered {chose.status_code}: {chose.text[:300]}"
                return report
            arm, decision = chose.json()["arm"], chose.json()["decision_id"]
            report.chosen.append(arm)
            events = [_event("banner_view", user, visit, arm, decision)]
            if rng.random() < TRUE_RATES.get(arm, 0.0):
                events.append(_event("banner_click", user, visit, arm, decision))
                report.clicks += 1
            sent = write.post("/v1/events", json=events)
            if sent.status_code != 200:
                report.error = f"POST /v1/events answered {sent.status_code}: {sent.text[:300]}"
                return report
            report.events += int(sent.json()["accepted"])
            report.rejected += int(sent.json()["rejected"])
        sent_at = time.perf_counter()
        report.caught_up = _wait_for_rewards(read, timeout)
        report.waited = time.perf_counter() - sent_at
        report.arms = read.get(f"/v1/bandits/{BANNER}").json()["arms"]
        if not report.caught_up:
            report.error = (
                f"the reward worker of kawa serve at {url} did not read the new events in {timeout:g}s"
            )
        return report
    finally:
        report.seconds = time.perf_counter() - started
        read.close()
        write.close()


def _users(warehouse: Warehouse) -> list[str]:
    """The shop's human users who have been active, in a fixed order (the seed picks visitors among them)."""
    rows = warehouse.query(
        "SELECT DISTINCT e.keys.user_id AS user_id FROM events e "
        "JOIN demo_users u ON u.user_id = e.keys.user_id WHERE NOT u.is_bot ORDER BY 1"
    )
    return [str(u) for u in rows.column("user_id").to_pylist()]


def _event(name: str, user: str, visit: int, arm: str, decision: str) -> dict[str, Any]:
    # The event id comes from the decision, so a resent batch lands once.
    return {
        "event_id": f"{name}-{decision}",
        "event_name": name,
        "keys": {"user_id": user, "session_id": f"s_banner_{decision[:12]}"},
        "page": "https://shop.example/c/home",
        "decision_id": decision,
        "banner": BANNER,
        "offer": arm,
        "visit": visit,
    }


def _wait_for_rewards(client: httpx.Client, timeout: float) -> bool:
    """Wait until the reward worker has read the event log up to where it ends now."""
    end = client.get("/healthz").json()["event_log_offset"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker = client.get("/v1/bandits").json()["worker"]
        if worker["running"] and worker["offset"] >= end:
            return True
        time.sleep(0.2)
    return False
