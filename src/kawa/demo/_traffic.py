"""Who visits the shop when: plays each user's scheduled visits, and the anonymous visitors' ones."""

from __future__ import annotations

import math
from itertools import accumulate

from kawa.demo._behaviour import Shopper, Visit
from kawa.demo._draws import Draws
from kawa.demo._population import PERSONAS, Population
from kawa.demo._site import Site

GAP_S = 1800.0  # a new visit starts at least half an hour after the last one ended
ANONYMOUS = PERSONAS[3]  # visitors who never sign up browse like window shoppers


def referrer_cum(score: float) -> list[float]:
    """Referrer weights: loyal shoppers come direct or from the newsletter more often."""
    return list(accumulate((0.25 + 0.3 * score, 0.35, 0.05 + 0.2 * score, 0.18, 0.12)))


def simulate_humans(
    site: Site,
    draws: Draws,
    pop: Population,
    schedule_user: list[int],
    schedule_start: list[float],
    schedule_cluster: list[int],
) -> None:
    """Play every scheduled human visit, user by user, in time order."""
    affinity_cum = [list(accumulate(row)) for row in pop.affinity.tolist()]
    shoppers: dict[int, list[Shopper]] = {}
    last_end: dict[int, float] = {}
    pending_signup: set[int] = set()
    for u, start, cluster in zip(schedule_user, schedule_start, schedule_cluster, strict=True):
        if u not in shoppers:
            persona = PERSONAS[int(pop.persona[u])]
            known = pop.signup_before[u] >= 0
            shoppers[u] = [
                Shopper(
                    persona, float(pop.score[u]), affinity_cum[u], pop.user_ids[u] if known else None, v, dev
                )
                for v, dev in zip(pop.visitor_ids[u], pop.devices[u], strict=True)
            ]
            if not known:
                pending_signup.add(u)
        start = max(start, last_end.get(u, -GAP_S) + GAP_S + 60.0 * draws.u())
        if start * 1000 >= site.end_ms:
            continue
        day = int(start // 86400)  # waiting for the last visit to end can push it to a later day
        devices = shoppers[u]
        who = devices[1] if len(devices) > 1 and draws.chance(0.25) else devices[0]
        # The account and the cart follow the user across devices once they are logged in.
        if u not in pending_signup:
            who.user_id = pop.user_ids[u]
            who.cart = devices[0].cart
        buy_logit = float(pop.buy_logit[u]) + (0.5 if who.cart else 0.0)
        buy = draws.chance(1.0 / (1.0 + math.exp(-buy_logit)))
        session = site.open_session(who.visitor_id, who.user_id, start, "buy" if buy else "browse")
        visit = Visit(site, draws, who, session, start, day, cluster)
        if u in pending_signup:
            visit.future_user_id = pop.user_ids[u]
        visit.land(draws.pick(referrer_cum(who.score)))
        if who.user_id is not None and draws.chance(0.12):
            visit.login()
        if buy:
            visit.buy()
        else:
            visit.browse(signup_chance=0.3)
        if who.user_id is not None:
            pending_signup.discard(u)
        who.recent = (who.recent + visit.viewed)[-8:]
        last_end[u] = visit.t


def simulate_visitors(
    site: Site, draws: Draws, pop_visitors: list[tuple[str, str, float, list[float]]], days: int
) -> None:
    """Anonymous visitors who never sign up: a few browsing visits each, sometimes an abandoned cart."""
    n_clusters = len(site.cat.clusters)
    for visitor_id, device, first_s, affinity_cum in pop_visitors:
        who = Shopper(ANONYMOUS, 0.2, affinity_cum, None, visitor_id, device)
        start = first_s
        for _ in range(1 + draws.geometric(0.8)):
            day = int(start // 86400)
            if day >= days:
                break
            cluster = min(draws.pick(affinity_cum), n_clusters - 1)
            session = site.open_session(visitor_id, None, start, "browse")
            visit = Visit(site, draws, who, session, start, day, cluster)
            visit.land(draws.pick(referrer_cum(0.0)))
            visit.browse(signup_chance=0.0)
            who.recent = (who.recent + visit.viewed)[-8:]
            start = visit.t + GAP_S + draws.lognormal(3 * 86400.0, 1.0)
