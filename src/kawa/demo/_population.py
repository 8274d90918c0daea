"""The demo shop's shoppers: hidden loyalty, personas, tastes, and when each one visits.

Loyalty is a hidden score in [0, 1) (level = 4 bins). It raises how often a shopper comes, how often a
visit is meant to buy, and how often a checkout completes, and it lowers the chance of churning. No
single event field carries it: a model has to add up frequency, conversion and recency to see it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from kawa.demo._catalogue import Catalogue


class PersonaSpec(NamedTuple):
    name: str
    rate: float  # visits per day at average loyalty
    buy_logit: float  # log-odds that a visit means to buy, at average loyalty
    basket: float  # extra items per order
    # Chance of taking the cheaper of two candidate items; negative: the dearer, with that chance.
    price_lean: float
    coupon: float  # chance an order uses a coupon
    length: float  # how long browsing goes on
    search: float  # chance of using search instead of menus


PERSONAS: tuple[PersonaSpec, ...] = (
    PersonaSpec("regular", 0.50, -1.2, 0.35, 0.3, 0.08, 1.0, 0.3),
    PersonaSpec("whale", 0.22, -0.7, 1.10, -0.8, 0.02, 1.1, 0.2),
    PersonaSpec("bargain_hunter", 0.45, -1.6, 0.50, 0.95, 0.55, 1.3, 0.6),
    PersonaSpec("window_shopper", 0.55, -3.2, 0.20, 0.4, 0.05, 1.6, 0.3),
    PersonaSpec("occasional", 0.12, -1.4, 0.25, 0.4, 0.10, 0.8, 0.3),
)
# P(persona | loyalty level): loyal shoppers are mostly regulars; low loyalty mostly occasional.
PERSONA_GIVEN_LEVEL = np.array(
    [
        [0.05, 0.05, 0.15, 0.30, 0.45],
        [0.15, 0.10, 0.25, 0.20, 0.30],
        [0.40, 0.15, 0.25, 0.10, 0.10],
        [0.60, 0.15, 0.15, 0.05, 0.05],
    ]
)
LEVEL_SHARE = (0.35, 0.30, 0.22, 0.13)
DEVICES = ("mobile", "desktop", "tablet")
BOT_KINDS = ("scraper", "cart_hoarder", "click_farm")
# Peaks of the day (hour, share of shoppers): commute, lunch, afternoon, evening.
PEAK_HOURS = np.array([8.5, 12.5, 16.0, 20.5])
PEAK_SHARE = np.array([0.15, 0.2, 0.15, 0.5])
# Visits by weekday, Monday first: weekends are busier.
WEEKLY_VISITS = np.array([0.92, 0.88, 0.9, 0.95, 1.05, 1.2, 1.15])
NEW_USER_SHARE = 0.3


class Population(NamedTuple):
    """Per-user arrays (index = user number - 1) and the ids derived from them."""

    user_ids: list[str]
    level: np.ndarray
    score: np.ndarray
    persona: np.ndarray
    rate: np.ndarray
    buy_logit: np.ndarray
    churn_day: np.ndarray  # day index from which the user is gone; >= days if never
    first_day: np.ndarray  # first day the user can visit (new users arrive during the window)
    signup_before: np.ndarray  # days before the window the account was made; -1 for new users
    devices: list[list[str]]
    visitor_ids: list[list[str]]
    peak_hour: np.ndarray
    affinity: np.ndarray  # users x clusters, rows sum to 1
    home_clusters: list[list[int]]
    is_bot: np.ndarray
    bot_kind: list[str | None]


def visitor_id(rng: np.random.Generator) -> str:
    """A random-looking anonymous device id."""
    return f"v_{int(rng.integers(1 << 48)):012x}"


def build_population(
    users: int, days: int, bot_share: float, cat: Catalogue, rng: np.random.Generator
) -> Population:
    """Draw every user's hidden traits."""
    level = rng.choice(4, size=users, p=LEVEL_SHARE)
    score = (level + rng.beta(2.0, 2.0, users)) / 4.0
    cum = PERSONA_GIVEN_LEVEL[level].cumsum(axis=1)
    persona = np.minimum((cum < rng.random(users)[:, None]).sum(axis=1), len(PERSONAS) - 1)
    base = np.array([PERSONAS[p].rate for p in persona])
    rate = base * np.exp(1.6 * (score - 0.5)) * rng.gamma(2.5, 1 / 2.5, users)
    buy_logit = (
        np.array([PERSONAS[p].buy_logit for p in persona]) + 3.0 * (score - 0.5) + rng.normal(0, 0.5, users)
    )
    churns = rng.random(users) < 0.55 * (1.0 - score) ** 1.2
    churn_day = np.where(churns, np.floor(rng.uniform(0.15, 1.0, users) * days), days + 1).astype(int)
    is_new = rng.random(users) < NEW_USER_SHARE
    first_day = np.where(is_new, rng.integers(0, max(1, days - 3), users), 0)
    signup_before = np.where(is_new, -1, rng.integers(7, 720, users))

    primary = rng.choice(3, size=users, p=[0.55, 0.35, 0.10])
    second = rng.random(users) < 0.4
    devices = [
        [DEVICES[p]] + ([DEVICES[(p + 1 + int(rng.integers(2))) % 3]] if s else [])
        for p, s in zip(primary.tolist(), second.tolist(), strict=True)
    ]
    visitor_ids = [[visitor_id(rng) for _ in d] for d in devices]
    peak_hour = PEAK_HOURS[rng.choice(len(PEAK_HOURS), size=users, p=PEAK_SHARE)]

    # Taste: one to three home clusters hold most of a user's interest; the rest follows popularity.
    n_clusters = len(cat.clusters)
    affinity = np.tile(0.15 * cat.cluster_popularity, (users, 1))
    home_clusters: list[list[int]] = []
    for u in range(users):
        k = 1 + int(rng.binomial(2, 0.45))
        home = rng.choice(n_clusters, size=k, replace=False, p=cat.cluster_popularity).tolist()
        affinity[u, home] += 0.85 * rng.dirichlet(np.full(k, 2.0))
        home_clusters.append(sorted(home))
    affinity /= affinity.sum(axis=1, keepdims=True)

    n_bots = round(users * bot_share)
    is_bot = np.zeros(users, dtype=bool)
    bot_kind: list[str | None] = [None] * users
    for k, u in enumerate(rng.choice(users, size=n_bots, replace=False).tolist()):
        is_bot[u] = True
        bot_kind[u] = BOT_KINDS[k % len(BOT_KINDS)]
    return Population(
        user_ids=[f"u_{u + 1:06d}" for u in range(users)],
        level=level,
        score=score,
        persona=persona,
        rate=rate,
        buy_logit=buy_logit,
        churn_day=churn_day,
        first_day=first_day,
        signup_before=signup_before,
        devices=devices,
        visitor_ids=visitor_ids,
        peak_hour=peak_hour,
        affinity=affinity,
        home_clusters=home_clusters,
        is_bot=is_bot,
        bot_kind=bot_kind,
    )


class Schedule(NamedTuple):
    """Human visits, sorted by user then start time."""

    user: np.ndarray
    day: np.ndarray
    start_s: np.ndarray  # seconds since the window start
    cluster: np.ndarray  # the taste cluster the visit is about


def schedule_visits(
    pop: Population, cat: Catalogue, days: int, weekday0: int, rng: np.random.Generator
) -> Schedule:
    """Draw how many visits each human user makes each day, when, and about which cluster."""
    users = len(pop.user_ids)
    d = np.arange(days)
    weeks = days // 7 + 1
    # Interest drifts week to week, so recent activity says more than old activity.
    walk = np.exp(np.cumsum(rng.normal(0.0, 0.3, (users, weeks)), axis=1))
    walk /= walk.mean(axis=1, keepdims=True)
    # New users keep arriving and carts fill up, which lifts demand by about a quarter over the window;
    # the market cools by as much, so a category's trend is what it says and not a general rise.
    cooling = np.exp(-0.3 * (d / max(days - 1, 1) - 0.5))
    # Shoppers come more often while what they like is in season or trending.
    interest = np.einsum("uc,dc->ud", pop.affinity, cat.cluster_day)  # no BLAS threads for a small product
    rates = (
        pop.rate[:, None]
        * interest
        * cooling[None, :]
        * walk[:, d // 7]
        * WEEKLY_VISITS[(weekday0 + d) % 7][None, :]
        * (d[None, :] >= pop.first_day[:, None])
        * np.where(d[None, :] >= pop.churn_day[:, None], 0.03, 1.0)
        * ~pop.is_bot[:, None]
    )
    counts = rng.poisson(rates)
    # A new user's first day always has a visit: that is when they arrive.
    new = np.flatnonzero((pop.signup_before < 0) & ~pop.is_bot)
    counts[new, pop.first_day[new]] = np.maximum(counts[new, pop.first_day[new]], 1)
    user, day = np.nonzero(counts)
    reps = counts[user, day]
    user = np.repeat(user, reps)
    day = np.repeat(day, reps)
    hour = (pop.peak_hour[user] + rng.normal(0.0, 2.0, len(user))) % 24.0
    start_s = day * 86400.0 + hour * 3600.0
    order = np.lexsort((start_s, user))
    user, day, start_s = user[order], day[order], start_s[order]

    weights = pop.affinity[user] * cat.cluster_day[day]
    cum = weights.cumsum(axis=1)
    cluster = (cum < rng.random(len(user))[:, None] * cum[:, -1:]).sum(axis=1)
    cluster = np.minimum(cluster, len(cat.clusters) - 1)
    return Schedule(user=user, day=day, start_s=start_s, cluster=cluster)
