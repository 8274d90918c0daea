"""The demo shop: a deterministic synthetic web shop whose events carry structure kawa's models can learn.

`generate(ShopConfig())` simulates shoppers, anonymous visitors and a few bots on a catalogue for
`days` days from `start`, and returns the events (time-ordered envelopes, ready for the collector)
with the ground truth behind them: each user's hidden loyalty and persona, which users are bots, the
catalogue with its mass-produced listings and over-stocked items, and what each session meant to do.

The same config gives byte-identical NDJSON. `start` defaults to a fixed date (2025-09-01, a Monday)
so runs are reproducible; all events then lie in the past, which is how a shop's history looks when
it is loaded. The default size (2,000 users, 60 days) gives about 360,000 events (105 MB of NDJSON)
in about four seconds of CPU.

>>> shop = generate(ShopConfig(users=60, days=14, items=80, visitors=20))
>>> shop.events[0]["event_name"]
'session_start'
>>> len(b"".join(iter_ndjson_batches(shop)).splitlines()) == len(shop.events)
True
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from typing import Any, overload

import msgspec
import numpy as np

from kawa.demo._bots import simulate_bots
from kawa.demo._catalogue import Catalogue, build_catalogue
from kawa.demo._draws import Draws
from kawa.demo._population import DEVICES, PERSONAS, Population, build_population, schedule_visits, visitor_id
from kawa.demo._site import Row, SessionRow, Site
from kawa.demo._traffic import simulate_humans, simulate_visitors

DAY_MS = 86_400_000


class ShopConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How big a shop to simulate, and from which seed; every field has a demo-sized default."""

    users: int = 2000
    days: int = 60
    seed: int = 7
    items: int = 600
    visitors: int = 1000  # anonymous visitors who never sign up
    bot_share: float = 0.015
    start: date = date(2025, 9, 1)

    def __post_init__(self) -> None:
        if self.users < 20:
            raise ValueError(f"users={self.users} is too few for a shop; use at least 20")
        if self.days < 7:
            raise ValueError(f"days={self.days} is too short to show a week; use at least 7")
        if self.items < 80:
            raise ValueError(f"items={self.items} leaves taste clusters nearly empty; use at least 80")
        if self.visitors < 0:
            raise ValueError(f"visitors={self.visitors} must be 0 or more")
        if not 0.0 <= self.bot_share <= 0.2:
            raise ValueError(f"bot_share={self.bot_share} must be between 0 and 0.2")


class UserTruth(msgspec.Struct, frozen=True):
    """What the shop knows about a user and kawa has to infer: loyalty, persona, whether it is a bot."""

    user_id: str
    visitor_ids: list[str]
    loyalty: int  # hidden level 0..3 (0 for bots)
    loyalty_score: float  # hidden score in [0, 1); level = floor(4 * score)
    persona: str  # regular | whale | bargain_hunter | window_shopper | occasional | bot
    is_bot: bool
    bot_kind: str | None  # scraper | cart_hoarder | click_farm
    signup_date: date | None  # None: never signed up, so no event carries this user_id
    churn_date: date | None  # the day the user stopped coming, if they did
    home_clusters: list[str]


class Item(msgspec.Struct, frozen=True):
    """A catalogue row."""

    item_id: str
    title: str
    category: str
    cluster: str  # "category/style": the latent taste cluster
    price: float
    seller_id: str
    is_mass_produced: bool
    popularity: float  # base demand weight within the cluster
    trend: float  # log change of demand from the first to the last day
    stock: int  # units on hand at the end of the window
    is_overstocked: bool  # stock far beyond what recent sales will clear


class Seller(msgspec.Struct, frozen=True):
    seller_id: str
    is_suspicious: bool  # lists mass-produced near-duplicate items


class SessionTruth(msgspec.Struct, frozen=True):
    """What a session meant to do, and whether it bought."""

    session_id: str
    visitor_id: str
    user_id: str | None
    start: datetime
    intent: str  # buy | browse | scraper | cart_hoarder | click_farm
    purchased: bool


class Events(Sequence[dict[str, Any]]):
    """The shop's events as envelopes in time order; built on access from compact rows."""

    def __init__(
        self, rows: list[Row], sessions: list[SessionRow], cat: Catalogue, start_ms: int, tag: str
    ) -> None:
        self._rows = rows
        self._sessions = sessions
        self._item_ids = cat.item_ids
        self._categories = cat.item_category
        self._prices = cat.prices
        self._start_ms = start_ms
        self._tag = tag

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            lo, hi, step = index.indices(len(self._rows))
            return self.render(lo, hi)[::step] if step > 0 else [self[i] for i in range(lo, hi, step)]
        if index < 0:
            index += len(self._rows)
        if not 0 <= index < len(self._rows):
            raise IndexError(f"event {index} is out of range; the shop has {len(self._rows)} events")
        return self.render(index, index + 1)[0]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for lo in range(0, len(self._rows), 4096):
            yield from self.render(lo, min(lo + 4096, len(self._rows)))

    def render(self, lo: int, hi: int) -> list[dict[str, Any]]:
        """Envelopes of events `lo` to `hi` (fresh dicts, safe to change)."""
        rows = self._rows[lo:hi]
        millis = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)) + self._start_ms
        stamps = np.datetime_as_string(millis.astype("datetime64[ms]"), unit="ms").tolist()
        sessions, tag = self._sessions, self._tag
        out = []
        for k, (_, _, name, session, user_id, page, item, quantity, props) in enumerate(rows):
            s = sessions[session]
            keys = {"visitor_id": s.visitor_id, "session_id": s.session_id}
            if user_id is not None:
                keys = {"user_id": user_id, **keys}
            ev: dict[str, Any] = {
                "event_id": f"e-{tag}-{lo + k:07d}",
                "event_name": name,
                "sync_date": stamps[k] + "Z",
                "keys": keys,
                "page": page,
            }
            if item >= 0:
                ev["item_id"] = self._item_ids[item]
                ev["category"] = self._categories[item]
                ev["price"] = self._prices[item]
            if quantity:
                ev["quantity"] = quantity
                if name == "purchase":
                    ev["revenue"] = round(self._prices[item] * quantity, 2)
            if props:
                ev.update(props)
            out.append(ev)
        return out


@dataclass(frozen=True)
class Shop:
    """A generated shop: its events and the ground truth behind them."""

    config: ShopConfig
    events: Events
    users: list[UserTruth]
    items: list[Item]
    sellers: list[Seller]
    sessions: list[SessionTruth]
    clusters: list[str]
    affinity: np.ndarray  # users x clusters: each user's share of interest in each taste cluster

    @property
    def start(self) -> datetime:
        return datetime(self.config.start.year, self.config.start.month, self.config.start.day, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The first moment after the window; every event is before it."""
        return self.start + timedelta(days=self.config.days)

    def summary(self) -> dict[str, int]:
        """Counts worth printing after generation."""
        return {
            "events": len(self.events),
            "sessions": len(self.sessions),
            "users": len(self.users),
            "bots": sum(u.is_bot for u in self.users),
            "items": len(self.items),
            "purchasing_sessions": sum(s.purchased for s in self.sessions),
        }


def generate(config: ShopConfig | None = None) -> Shop:
    """Simulate the shop described by `config`; the same config always gives the same shop."""
    config = config or ShopConfig()
    # The simulation makes millions of small objects that all stay alive; the cyclic garbage
    # collector would rescan them over and over for nothing (a quarter of the run time).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _generate(config)
    finally:
        if was_enabled:
            gc.enable()


def _generate(config: ShopConfig) -> Shop:
    # One independent stream per part, so changing one part's size leaves the others' draws alone.
    rng = [np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(8)]
    weekday0 = config.start.weekday()
    cat = build_catalogue(config.items, config.days, weekday0, rng[0])
    pop = build_population(config.users, config.days, config.bot_share, cat, rng[1])
    plan = schedule_visits(pop, cat, config.days, weekday0, rng[2])

    site = Site(cat, config.days * DAY_MS)
    simulate_humans(
        site,
        Draws(rng[3]),
        pop,
        plan.user.tolist(),
        plan.start_s.tolist(),
        plan.cluster.tolist(),
    )
    simulate_visitors(site, Draws(rng[4]), _anonymous_visitors(config, cat, rng[7]), config.days)
    simulate_bots(site, Draws(rng[5]), pop, config.days)
    site.finish()

    start_ms = int(
        datetime(config.start.year, config.start.month, config.start.day, tzinfo=UTC).timestamp() * 1000
    )
    tag = hashlib.blake2b(msgspec.json.encode(config), digest_size=4).hexdigest()
    return Shop(
        config=config,
        events=Events(site.rows, site.sessions, cat, start_ms, tag),
        users=_user_truth(config, pop, cat, site.rows),
        items=_items(config, cat, site.rows, rng[6]),
        sellers=[Seller(s, s in cat.suspicious_sellers) for s in sorted(cat.seller_ids)],
        sessions=[
            SessionTruth(
                s.session_id,
                s.visitor_id,
                s.user_id,
                datetime.fromtimestamp((start_ms + s.start_ms) / 1000, UTC),
                s.intent,
                s.purchased,
            )
            for s in site.sessions
        ],
        clusters=cat.clusters,
        affinity=pop.affinity,
    )


_encoder = msgspec.json.Encoder()


def iter_ndjson_batches(shop: Shop, size: int = 500) -> Iterator[bytes]:
    """The shop's events as NDJSON request bodies of `size` events each, in time order."""
    if size < 1:
        raise ValueError(f"size={size} must be at least 1")
    events = shop.events
    for lo in range(0, len(events), size):
        yield _encoder.encode_lines(events.render(lo, min(lo + size, len(events))))


def _anonymous_visitors(
    config: ShopConfig, cat: Catalogue, rng: np.random.Generator
) -> list[tuple[str, str, float, list[float]]]:
    """Visitors who never sign up: one liked cluster on top of general popularity, any arrival time."""
    out = []
    for _ in range(config.visitors):
        affinity = 0.4 * cat.cluster_popularity.copy()
        affinity[rng.integers(len(cat.clusters))] += 0.6
        device = DEVICES[rng.choice(3, p=[0.6, 0.32, 0.08])]
        out.append(
            (
                visitor_id(rng),
                device,
                float(rng.uniform(0, config.days * 86400.0)),
                list(accumulate(affinity.tolist())),
            )
        )
    return out


def _user_truth(config: ShopConfig, pop: Population, cat: Catalogue, rows: list[Row]) -> list[UserTruth]:
    """Ground-truth rows for every user; a new user's signup date is the day of their signup event."""
    signed_up_in_window: dict[str, date] = {}
    for t_ms, _, name, _, user_id, *_ in rows:
        if name == "signup" and user_id is not None:
            signed_up_in_window.setdefault(user_id, config.start + timedelta(days=t_ms // DAY_MS))
    out = []
    for u, user_id in enumerate(pop.user_ids):
        bot = bool(pop.is_bot[u])
        if pop.signup_before[u] >= 0 or bot:
            signup: date | None = config.start - timedelta(days=int(max(pop.signup_before[u], 30)))
        else:
            signup = signed_up_in_window.get(user_id)
        churn = int(pop.churn_day[u])
        out.append(
            UserTruth(
                user_id=user_id,
                visitor_ids=list(pop.visitor_ids[u]),
                loyalty=0 if bot else int(pop.level[u]),
                loyalty_score=0.0 if bot else round(float(pop.score[u]), 4),
                persona="bot" if bot else PERSONAS[int(pop.persona[u])].name,
                is_bot=bot,
                bot_kind=pop.bot_kind[u],
                signup_date=signup,
                churn_date=config.start + timedelta(days=churn) if churn < config.days and not bot else None,
                home_clusters=[cat.clusters[c] for c in pop.home_clusters[u]],
            )
        )
    return out


def _items(config: ShopConfig, cat: Catalogue, rows: list[Row], rng: np.random.Generator) -> list[Item]:
    """Catalogue rows with end-of-window stock: most items hold weeks of cover, a few far more."""
    n = len(cat.item_ids)
    recent = np.zeros(n)
    since = (config.days - 28) * DAY_MS
    for t_ms, _, name, _, _, _, item, quantity, _ in rows:
        if name == "purchase" and t_ms >= since:
            recent[item] += quantity
    daily = (recent + 1.0) / min(28, config.days)
    # Over-stocked: falling-demand items someone ordered too much of, holding months of cover.
    falling = np.flatnonzero(cat.trend < -0.2)
    over = np.zeros(n, dtype=bool)
    over[rng.choice(falling, size=min(len(falling), max(2, n // 25)), replace=False)] = True
    cover = np.where(over, rng.uniform(150.0, 300.0, n), rng.uniform(10.0, 45.0, n))
    stock = np.ceil(daily * cover).astype(int) + np.where(over, 20, 0)
    return [
        Item(
            item_id=cat.item_ids[i],
            title=cat.titles[i],
            category=cat.item_category[i],
            cluster=cat.clusters[int(cat.item_cluster[i])],
            price=cat.prices[i],
            seller_id=cat.item_seller[i],
            is_mass_produced=bool(cat.mass_produced[i]),
            popularity=round(float(cat.popularity[i]), 4),
            trend=round(float(cat.trend[i]), 4),
            stock=int(stock[i]),
            is_overstocked=bool(over[i]),
        )
        for i in range(n)
    ]
