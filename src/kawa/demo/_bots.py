"""Bots and cheaters in the demo shop: accounts that act like machines.

Three kinds, each with a tell a detector can learn, none of them a single field:
- scraper: sweeps product pages in catalogue order, one every second or so, at any hour;
- cart_hoarder: adds and removes the same few popular items over and over, holding stock;
- click_farm: views and buys the mass-produced items of suspicious sellers to push them up the charts.
All keep a near-constant pace between events (humans vary by minutes), a fresh visitor id per visit
(no cookies), and far more events per visit than any shopper.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kawa.demo._draws import Draws
from kawa.demo._population import Population
from kawa.demo._site import CART, CHECKOUT, LOGIN, PAGE_TYPE, Site

PACE_S = {"scraper": 1.2, "cart_hoarder": 2.0, "click_farm": 3.0}
AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/126.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
)


def simulate_bots(site: Site, draws: Draws, pop: Population, days: int) -> None:
    """Play every bot's visits over its active stretch of the window."""
    cat = site.cat
    n_items = len(cat.item_ids)
    popular = np.argsort(-cat.popularity).tolist()[:20]
    farmed = np.flatnonzero(cat.mass_produced).tolist()
    for u in np.flatnonzero(pop.is_bot).tolist():
        kind = pop.bot_kind[u]
        assert kind is not None
        user_id = pop.user_ids[u]
        pace = PACE_S[kind] * (0.8 + 0.4 * draws.u())
        first = draws.index(max(1, days // 2))
        span = 7 + draws.index(max(1, (days * 2) // 5))
        agent = AGENTS[draws.index(len(AGENTS))]
        for day in range(first, min(days, first + span)):
            for _ in range(1 + int(draws.chance(0.4))):
                t = day * 86400.0 + draws.u() * 86000.0
                visitor = f"v_{int(draws.u() * (1 << 48)):012x}"
                session = site.open_session(visitor, user_id, t, kind)
                step = _Pacer(site, draws, session, user_id, t, pace)
                step.emit(
                    "session_start", LOGIN, props={"referrer": "", "device": "desktop", "user_agent": agent}
                )
                step.emit("login", LOGIN, props=PAGE_TYPE["login"])
                if kind == "scraper":
                    item = draws.index(n_items)
                    for _ in range(60 + draws.index(90)):
                        step.emit("view", site.item_url[item], item, props=PAGE_TYPE["item"])
                        item = (item + 1) % n_items
                elif kind == "cart_hoarder":
                    items = [popular[draws.index(len(popular))] for _ in range(3)]
                    for _ in range(12 + draws.index(18)):
                        item = items[draws.index(3)]
                        step.emit("cart_add", site.item_url[item], item, 5, PAGE_TYPE["item"])
                        step.emit("view", CART, props=PAGE_TYPE["cart"])
                        step.emit("cart_remove", CART, item, 5, PAGE_TYPE["cart"])
                else:
                    for k in range(15 + draws.index(25)):
                        item = farmed[draws.index(len(farmed))]
                        step.emit("view", site.item_url[item], item, props=PAGE_TYPE["item"])
                        step.emit("view", site.reviews_url[item], item, props=PAGE_TYPE["reviews"])
                        if k % 8 == 7:
                            order = {"order_id": site.next_order_id(), "payment": "card"}
                            step.emit("purchase", CHECKOUT, item, 1, order)


class _Pacer:
    """Emits a bot's events at its near-constant pace."""

    def __init__(self, site: Site, draws: Draws, session: int, user_id: str, t: float, pace: float) -> None:
        self.site, self.draws, self.session, self.user_id = site, draws, session, user_id
        self.t, self.pace = t, pace

    def emit(
        self, name: str, page: str, item: int = -1, quantity: int = 0, props: dict[str, Any] | None = None
    ) -> None:
        self.site.emit(self.t, name, self.session, self.user_id, page, item, quantity, props)
        self.t += self.pace * (1.0 + 0.02 * (self.draws.u() - 0.5))
