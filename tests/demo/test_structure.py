"""The demo shop carries the structure each of kawa's use cases has to learn, checked from its events."""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np

from kawa.demo import Shop

from ._frame import Envelope, Frame, auc, fit_predict


def _human(shop: Shop, events: Frame) -> np.ndarray:
    bots = np.array([u.is_bot for u in shop.users])
    return (events.user < 0) | ~bots[np.maximum(events.user, 0)]


def _count(users: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    return np.bincount(users, weights=weights, minlength=n).astype(float)


def _loyalty_features(
    shop: Shop, ev: Frame, cutoff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """RFM and engagement features known at `cutoff`, and whether the user buys in the next 14 days."""
    n = len(shop.users)
    before = (ev.day < cutoff) & (ev.user >= 0)
    last = np.full(n, -np.inf)
    np.maximum.at(last, ev.user[before], ev.day[before])
    recency = cutoff - last

    def counted(name: str, since: float = -1.0, weights: np.ndarray | None = None) -> np.ndarray:
        m = before & ev.where(name) & (ev.day >= since)
        return _count(ev.user[m], n, None if weights is None else weights[m])

    bought = before & ev.where("purchase")
    last_buy = np.full(n, -np.inf)
    np.maximum.at(last_buy, ev.user[bought], ev.day[bought])
    features = np.log1p(
        np.column_stack(
            [
                np.minimum(recency, 99),
                np.minimum(cutoff - last_buy, 99),
                counted("session_start"),
                counted("session_start", cutoff - 14),
                counted("purchase"),
                counted("purchase", weights=ev.revenue),
                counted("cart_add"),
                counted("view"),
            ]
        )
    )
    after = (ev.day >= cutoff) & (ev.day < cutoff + 14) & ev.where("purchase") & (ev.user >= 0)
    label = _count(ev.user[after], n) > 0
    bots = np.array([u.is_bot for u in shop.users])
    keep = np.isfinite(recency) & ~bots
    level = np.array([u.loyalty for u in shop.users])
    return features[keep], label[keep], recency[keep], level[keep]


def test_loyalty_drives_future_purchases_beyond_recency(shop: Shop, events: Frame) -> None:
    x_train, y_train, _, _ = _loyalty_features(shop, events, 28.0)
    x_test, y_test, recency, level = _loyalty_features(shop, events, 42.0)
    assert 0.15 < y_test.mean() < 0.5
    model = auc(fit_predict(x_train, y_train, x_test), y_test)
    recency_only = auc(-recency, y_test)
    assert recency_only > 0.65, "recency should matter too"
    assert model > recency_only + 0.05, (model, recency_only)

    rate = [y_test[level == k].mean() for k in range(4)]
    assert rate == sorted(rate) and rate[3] > 3 * rate[0], rate
    recent = recency <= 7  # among equally recent users, loyalty still separates buyers
    assert y_test[recent & (level == 3)].mean() > y_test[recent & (level == 0)].mean() + 0.4


def test_loyalty_is_not_readable_from_one_feature(shop: Shop, events: Frame) -> None:
    x, _, _, _ = _loyalty_features(shop, events, 42.0)
    bots = np.array([u.is_bot for u in shop.users])
    score = np.array([u.loyalty_score for u in shop.users])[~bots]
    seen = np.isin(np.flatnonzero(~bots), np.unique(events.user[(events.user >= 0) & (events.day < 42)]))
    correlations = [abs(np.corrcoef(x[:, j], score[seen])[0, 1]) for j in range(x.shape[1])]
    assert max(correlations) < 0.85, correlations
    assert max(correlations) > 0.4, "some behaviour must reflect loyalty"


def test_sessions_run_through_a_funnel_with_abandonment(
    shop: Shop, events: Frame, wire: list[Envelope]
) -> None:
    human = _human(shop, events)
    n = len(shop.sessions)

    def sessions_with(name: str) -> np.ndarray:
        return _count(events.session[human & events.where(name)], n) > 0

    viewed, carted, bought = sessions_with("view"), sessions_with("cart_add"), sessions_with("purchase")
    assert viewed.sum() > carted.sum() > bought.sum() > 0.1 * viewed.sum()
    abandoned = (carted & ~bought).sum() / carted.sum()
    assert 0.3 < abandoned < 0.85, abandoned
    # Abandoned carts are often bought in a later visit.
    later = 0
    carts: dict[int, set[int]] = defaultdict(set)
    for u, name, item in zip(events.user.tolist(), events.name.tolist(), events.item.tolist(), strict=True):
        if u >= 0 and name == 2:
            carts[u].add(item)
        elif u >= 0 and name == 4 and item in carts[u]:
            later += 1
    assert later > 0.5 * bought.sum()

    per_user = _count(
        events.user[human & events.where("session_start") & (events.user >= 0)], len(shop.users)
    )
    assert np.median(per_user[per_user > 0]) >= 4
    starts = [e for e in wire if e.event_name == "session_start"]
    assert len(starts) == n
    per_session = _count(events.session[human], n)
    assert 5 < np.median(per_session[per_session > 0]) < 20


def test_sessions_record_referrer_and_device(shop: Shop) -> None:
    starts = [e for e in shop.events[:20000] if e["event_name"] == "session_start"]
    assert {e["device"] for e in starts} == {"mobile", "desktop", "tablet"}
    assert {e["referrer"] for e in starts} >= {"", "https://www.google.com/", "https://www.instagram.com/"}
    assert {e.get("utm_medium") for e in starts} >= {None, "email", "cpc", "social"}


def _page_sequences(shop: Shop, wire: list[Envelope]) -> dict[str, list[tuple[str, str | None]]]:
    """Each session's pages before checkout: (page type, item_id)."""
    pages: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    for e in wire:
        if e.event_name in ("view", "search") and e.page_type not in (None, "checkout"):
            pages[e.keys.session_id].append((e.page_type, e.item_id))
    return pages


def test_page_order_tells_about_a_purchase_beyond_the_bag_of_pages(shop: Shop, wire: list[Envelope]) -> None:
    kinds = ["home", "category", "search", "item", "reviews", "cart"]
    pages = _page_sequences(shop, wire)
    bag, order, label, day = [], [], [], []
    for s in shop.sessions:
        seq = pages.get(s.session_id, [])
        if s.intent not in ("buy", "browse") or len(seq) < 3:
            continue
        counts = np.zeros(len(kinds))
        for kind, _ in seq:
            counts[kinds.index(kind)] += 1
        items = [i for k, i in seq if k == "item"]
        bag.append([*counts, len(set(items)), len(items) - len(set(items)), len(seq)])
        pairs = np.zeros(len(kinds) ** 2)
        for (a, _), (b, _) in itertools.pairwise(seq):
            pairs[kinds.index(a) * len(kinds) + kinds.index(b)] += 1
        back = sum(a == "reviews" and b == "item" and i == j for (a, i), (b, j) in itertools.pairwise(seq))
        order.append([*pairs, back, seq[0][0] == "cart" or seq[1][0] == "cart", seq[-1][0] == "cart"])
        label.append(s.purchased)
        day.append((s.start - shop.start).days)
    x_bag, x_all = np.log1p(np.array(bag, dtype=float)), np.log1p(np.hstack([bag, order]).astype(float))
    y, train = np.array(label, dtype=float), np.array(day) < 30
    with_bag = auc(fit_predict(x_bag[train], y[train], x_bag[~train]), y[~train])
    with_order = auc(fit_predict(x_all[train], y[train], x_all[~train]), y[~train])
    assert with_bag > 0.75
    assert with_order > with_bag + 0.02, (with_bag, with_order)


def test_items_viewed_together_share_a_taste_cluster_and_predict_later_views(
    shop: Shop, events: Frame
) -> None:
    n = len(shop.items)
    cluster = np.array([shop.clusters.index(i.cluster) for i in shop.items])
    m = events.where("view") & (events.item >= 0) & _human(shop, events)
    together, popularity = np.zeros((n, n)), np.zeros(n)
    later: list[list[int]] = []
    same = pairs = 0
    by_session: dict[int, list[int]] = defaultdict(list)
    for s, i in zip(events.session[m].tolist(), events.item[m].tolist(), strict=True):
        if i not in by_session[s]:
            by_session[s].append(i)
    first_day = {s: d for s, d in zip(events.session[m].tolist(), events.day[m].tolist(), strict=True)}
    for s, items in by_session.items():
        if first_day[s] < 40:
            popularity[items] += 1
            for a, b in itertools.pairwise(items):
                together[a, b] += 1
                together[b, a] += 1
                same += cluster[a] == cluster[b]
                pairs += 1
        elif len(items) >= 2:
            later.append(items)
    chance = np.sum(np.bincount(cluster) ** 2) / n**2
    assert same / pairs > 0.6 > 10 * chance
    top = np.argsort(-popularity)[:11].tolist()
    hit_together = np.mean([bool(set(np.argsort(-together[s[0]])[:10].tolist()) & set(s[1:])) for s in later])
    hit_popular = np.mean([bool(set([i for i in top if i != s[0]][:10]) & set(s[1:])) for s in later])
    assert hit_together > 2 * hit_popular, (hit_together, hit_popular)


def test_demand_has_weekly_seasonality_and_trends(shop: Shop, events: Frame) -> None:
    m = events.where("purchase") & _human(shop, events)
    days = shop.config.days
    daily = np.bincount(events.day[m].astype(int), weights=events.quantity[m], minlength=days)
    weekday = (shop.start.weekday() + np.arange(days)) % 7
    assert daily[weekday >= 5].mean() > 1.15 * daily[weekday < 5].mean()

    category = np.array([i.category for i in shop.items])[events.item]
    half = days // 2

    def growth(mask: np.ndarray) -> float:
        first = events.quantity[mask & (events.day < half)].sum()
        second = events.quantity[mask & (events.day >= half)].sum()
        return float(np.log((second + 1) / (first + 1)))

    assert growth(m & (category == "garden")) > 0.3
    assert growth(m & (category == "clothing")) < growth(m & (category == "garden")) - 0.5
    trend = np.array([i.trend for i in shop.items])
    first = np.bincount(
        events.item[m & (events.day < half)],
        weights=events.quantity[m & (events.day < half)],
        minlength=len(trend),
    )
    second = np.bincount(
        events.item[m & (events.day >= half)],
        weights=events.quantity[m & (events.day >= half)],
        minlength=len(trend),
    )
    busy = first + second >= 20
    assert busy.sum() > 50
    assert np.corrcoef(trend[busy], np.log((second[busy] + 1) / (first[busy] + 1)))[0, 1] > 0.3


def test_overstocked_items_hold_months_of_cover(shop: Shop, events: Frame) -> None:
    m = events.where("purchase") & (events.day >= shop.config.days - 28)
    sold = np.bincount(events.item[m], weights=events.quantity[m], minlength=len(shop.items))
    cover = np.array([i.stock for i in shop.items]) / ((sold + 1) / 28)
    over = np.array([i.is_overstocked for i in shop.items])
    assert 5 <= over.sum() <= 0.1 * len(shop.items)
    assert cover[over].min() > 100 > 75 > cover[~over].max()
    assert all(shop.items[i].trend < 0 for i in np.flatnonzero(over))


def test_bots_keep_a_machine_pace_with_odd_sessions(shop: Shop, events: Frame) -> None:
    bots = np.array([u.is_bot for u in shop.users])
    is_bot_event = (events.user >= 0) & bots[np.maximum(events.user, 0)]
    order = np.lexsort((events.day, events.session))
    session, day, bot = events.session[order], events.day[order] * 86400, is_bot_event[order]
    cuts = np.flatnonzero(np.diff(session)) + 1
    spread: dict[bool, list[float]] = {True: [], False: []}
    size: dict[bool, list[int]] = {True: [], False: []}
    for idx in np.split(np.arange(len(session)), cuts):
        gaps = np.diff(day[idx])[2:]  # after session_start and login
        kind = bool(bot[idx].any())
        size[kind].append(len(idx))
        if len(gaps) >= 5:
            spread[kind].append(gaps.std() / gaps.mean())
    assert np.median(spread[True]) < 0.05 < 0.5 < np.median(spread[False])
    assert np.median(size[True]) > 3 * np.median(size[False])
    assert np.mean(size[True]) > 40


def test_mass_produced_items_are_cheap_near_duplicates_from_suspicious_sellers(shop: Shop) -> None:
    suspicious = {s.seller_id for s in shop.sellers if s.is_suspicious}
    mass = [i for i in shop.items if i.is_mass_produced]
    normal = [i for i in shop.items if not i.is_mass_produced]
    assert 10 <= len(mass) <= 0.06 * len(shop.items) and len(suspicious) == 3
    assert {i.seller_id for i in mass} == suspicious
    assert not suspicious & {i.seller_id for i in normal}

    def similarity(a: str, b: str) -> float:
        x, y = set(a.lower().split()), set(b.lower().split())
        return len(x & y) / len(x | y)

    def mean_similarity(items: list) -> float:  # type: ignore[type-arg]
        return float(np.mean([similarity(a.title, b.title) for a in items for b in items if a is not b]))

    for cluster in {i.cluster for i in mass}:
        twins = [i for i in mass if i.cluster == cluster]
        others = [i for i in normal if i.cluster == cluster]
        assert mean_similarity(twins) > 0.45 > 0.2 > mean_similarity(others)
        assert max(i.price for i in twins) < 0.6 * float(np.median([i.price for i in others]))


def test_personas_form_distinct_rfm_segments(shop: Shop, wire: list[Envelope]) -> None:
    persona = {u.user_id: u.persona for u in shop.users}
    value: dict[str, float] = defaultdict(float)
    buyer: dict[str, str] = {}
    coupon: dict[str, bool] = {}
    visits: dict[str, int] = defaultdict(int)
    for e in wire:
        if e.event_name == "purchase" and e.order_id and e.keys.user_id and e.revenue:
            value[e.order_id] += e.revenue
            buyer[e.order_id] = persona[e.keys.user_id]
            coupon[e.order_id] = e.coupon is not None
        elif e.event_name == "session_start" and e.keys.user_id:
            visits[persona[e.keys.user_id]] += 1
    names = ["regular", "whale", "bargain_hunter", "window_shopper", "occasional"]
    size = {p: sum(u.persona == p for u in shop.users) for p in names}
    orders = {p: sum(b == p for b in buyer.values()) for p in names}
    basket = {p: np.mean([v for o, v in value.items() if buyer[o] == p]) for p in names}
    coupons = {p: np.mean([coupon[o] for o in buyer if buyer[o] == p]) for p in names}
    per_user = {p: orders[p] / size[p] for p in names}
    conversion = {p: orders[p] / visits[p] for p in names}
    assert max(per_user, key=per_user.__getitem__) == "regular", per_user
    assert max(basket, key=basket.__getitem__) == "whale" and basket["whale"] > 1.3 * basket["regular"], (
        basket
    )
    assert max(coupons, key=coupons.__getitem__) == "bargain_hunter" and coupons["bargain_hunter"] > 0.3
    assert min(conversion, key=conversion.__getitem__) == "window_shopper", conversion
    assert visits["window_shopper"] / size["window_shopper"] > 3 * visits["occasional"] / size["occasional"]
