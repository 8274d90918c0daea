"""The demo shop's catalogue: categories, taste clusters, sellers, items, and how demand for each moves.

Every category has three styles; a (category, style) pair is a taste cluster. Shoppers like a few
clusters and browse mostly inside them, so items of one cluster are viewed and bought together.
Within a cluster popularity is Zipf-like. Demand for an item changes with the weekday (per category)
and follows a trend over the window (per category and per item).
"""

from __future__ import annotations

import math
from itertools import accumulate
from typing import NamedTuple

import numpy as np


class CategorySpec(NamedTuple):
    name: str
    base_price: float
    # Log change of demand from the first to the last day of the window.
    trend: float
    # Demand by weekday, Monday first.
    weekly: tuple[float, float, float, float, float, float, float]
    styles: tuple[tuple[str, tuple[str, ...]], ...]


_FLAT = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)

CATEGORIES: tuple[CategorySpec, ...] = (
    CategorySpec("shoes", 65.0, 0.0, _FLAT, (
        ("running", ("Running Shoe", "Trail Runner", "Racing Flat")),
        ("formal", ("Oxford", "Loafer", "Derby Shoe")),
        ("hiking", ("Hiking Boot", "Trail Boot", "Approach Shoe")),
    )),
    CategorySpec("clothing", 35.0, -0.8, _FLAT, (
        ("casual", ("T-Shirt", "Hoodie", "Chinos")),
        ("office", ("Blazer", "Dress Shirt", "Pencil Skirt")),
        ("outdoor", ("Rain Jacket", "Fleece", "Down Vest")),
    )),
    CategorySpec("electronics", 120.0, 0.2, (1.0, 0.95, 0.95, 1.0, 1.0, 1.1, 1.3), (
        ("audio", ("Headphones", "Earbuds", "Speaker")),
        ("phone", ("Phone Case", "Charger", "Power Bank")),
        ("gaming", ("Controller", "Gaming Mouse", "Keyboard")),
    )),
    CategorySpec("books", 16.0, 0.0, (0.9, 0.9, 0.9, 0.95, 1.0, 1.2, 1.4), (
        ("fiction", ("Novel", "Thriller", "Short Stories")),
        ("cooking", ("Cookbook", "Baking Book", "Recipe Collection")),
        ("science", ("Popular Science", "Astronomy Guide", "Biology Primer")),
    )),
    CategorySpec("home", 40.0, 0.1, _FLAT, (
        ("kitchen", ("Chef Knife", "Frying Pan", "Cutting Board")),
        ("decor", ("Vase", "Wall Art", "Table Lamp")),
        ("bedding", ("Duvet", "Pillow", "Sheet Set")),
    )),
    CategorySpec("beauty", 22.0, 0.3, (1.0, 1.0, 1.0, 1.05, 1.15, 1.0, 0.9), (
        ("skincare", ("Moisturiser", "Serum", "Cleanser")),
        ("makeup", ("Lipstick", "Mascara", "Foundation")),
        ("haircare", ("Shampoo", "Hair Oil", "Conditioner")),
    )),
    CategorySpec("toys", 28.0, -0.5, (0.9, 0.9, 0.9, 0.95, 1.0, 1.4, 1.2), (
        ("building", ("Brick Set", "Construction Kit", "Marble Run")),
        ("plush", ("Teddy Bear", "Plush Fox", "Soft Bunny")),
        ("puzzles", ("Jigsaw Puzzle", "Brain Teaser", "3D Puzzle")),
    )),
    CategorySpec("sports", 45.0, 0.6, (1.2, 1.1, 1.0, 1.0, 0.9, 1.0, 1.1), (
        ("yoga", ("Yoga Mat", "Yoga Block", "Yoga Strap")),
        ("cycling", ("Bike Light", "Cycling Helmet", "Bike Lock")),
        ("fitness", ("Dumbbell Set", "Kettlebell", "Resistance Band")),
    )),
    CategorySpec("garden", 35.0, 1.2, (0.8, 0.8, 0.85, 0.9, 1.0, 1.6, 1.5), (
        ("tools", ("Pruning Shears", "Garden Trowel", "Hose Reel")),
        ("plants", ("Seed Kit", "Herb Planter", "Potting Soil")),
        ("patio", ("Patio Chair", "Garden Parasol", "Fire Pit")),
    )),
    CategorySpec("grocery", 9.0, 0.0, (0.9, 0.9, 0.95, 1.0, 1.3, 1.2, 0.8), (
        ("coffee", ("Coffee Beans", "Ground Coffee", "Espresso Pods")),
        ("snacks", ("Trail Mix", "Protein Bar", "Dark Chocolate")),
        ("tea", ("Green Tea", "Herbal Tea", "Chai")),
    )),
)  # fmt: skip

BRANDS = (
    "Northwind", "Aurora", "Kestrel", "Lumen", "Solace", "Tidewater", "Ember", "Granite", "Willow",
    "Nimbus", "Harbor", "Juniper", "Atlas", "Cobalt", "Fable", "Meridian", "Pioneer", "Quarry",
)  # fmt: skip
VARIANTS = ("", " Pro", " Lite", " Plus", " Max", " Mini", " II", " Classic", " Sport", " Eco")

# Mass-produced listings: the same product re-listed with shuffled keywords by a few sellers.
MASS_TEMPLATES = (
    ("electronics", "audio", "Wireless Earbuds Bluetooth 5.3 Headphones Noise Cancelling Sports Earphones"),
    ("beauty", "skincare", "Vitamin C Serum Face Brightening Anti Aging Hyaluronic Acid Skin Care"),
    ("toys", "plush", "Cute Plush Toy Soft Stuffed Animal Pillow Kids Gift Doll"),
)
MASS_PREFIXES = ("2025 New", "Upgraded", "Hot Sale", "Top Rated", "Free Shipping", "Best")
MASS_COLOURS = ("Black", "White", "Pink", "Blue", "Grey", "Green")


class Catalogue(NamedTuple):
    """The generated catalogue as arrays over items, plus the per-day demand weights sessions draw from."""

    clusters: list[str]  # "category/style"
    cluster_category: np.ndarray  # cluster -> category index
    cluster_popularity: np.ndarray  # cluster -> share of interest, sums to 1
    item_ids: list[str]
    titles: list[str]
    item_cluster: np.ndarray
    item_category: list[str]
    prices: list[float]
    popularity: np.ndarray  # base weight within the cluster
    trend: np.ndarray  # log change of the item's demand over the window (category + item)
    seller_ids: list[str]
    item_seller: list[str]
    suspicious_sellers: set[str]
    mass_produced: np.ndarray  # bool per item
    cluster_items: list[list[int]]  # cluster -> item indexes
    # item_cum[day][cluster]: running sums of the cluster's item weights on that day.
    item_cum: list[list[list[float]]]
    # cluster_day[day, cluster]: weekday and trend factor of the cluster's category on that day.
    cluster_day: np.ndarray


def build_catalogue(n_items: int, days: int, weekday0: int, rng: np.random.Generator) -> Catalogue:
    """Draw the catalogue: prices, popularity, trends, sellers and a few mass-produced listings."""
    clusters = [f"{c.name}/{style}" for c in CATEGORIES for style, _ in c.styles]
    cluster_category = np.repeat(np.arange(len(CATEGORIES)), [len(c.styles) for c in CATEGORIES])
    n_clusters = len(clusters)
    ranks = rng.permutation(n_clusters) + 1.0
    cluster_popularity = ranks**-0.7
    cluster_popularity /= cluster_popularity.sum()

    n_mass = max(3, round(n_items * 0.04))
    n_normal = n_items - n_mass
    # Every cluster gets two items; popular clusters get more of the rest.
    share = 0.5 / n_clusters + 0.5 * cluster_popularity
    counts = 2 + np.floor(share * (n_normal - 2 * n_clusters)).astype(int)
    counts[np.argsort(-share)[: n_normal - counts.sum()]] += 1
    item_cluster = np.repeat(np.arange(n_clusters), counts)

    n_sellers = max(6, n_items // 10)
    seller_ids = [f"sel_{k:03d}" for k in rng.permutation(n_sellers + 3) + 1]
    suspicious = seller_ids[:3]
    normal_sellers = seller_ids[3:]

    titles: list[str] = []
    prices: list[float] = []
    popularity = np.empty(n_items)
    item_seller: list[str] = []
    for c in range(n_clusters):
        members = np.flatnonzero(item_cluster == c)
        spec = CATEGORIES[cluster_category[c]]
        nouns = spec.styles[c % 3][1]
        popularity[members] = (rng.permutation(len(members)) + 1.0) ** -1.1
        style_price = spec.base_price * math.exp(rng.normal(0.0, 0.3))
        for _ in members:
            brand = BRANDS[rng.integers(len(BRANDS))]
            noun = nouns[rng.integers(len(nouns))]
            variant = VARIANTS[rng.integers(len(VARIANTS))]
            titles.append(f"{brand} {noun}{variant} {rng.integers(1, 10)}")
            prices.append(_shop_price(style_price * math.exp(rng.normal(0.0, 0.45))))
            item_seller.append(normal_sellers[rng.integers(len(normal_sellers))])

    mass_cluster = []
    for k in range(n_mass):
        category, style, template = MASS_TEMPLATES[k % len(MASS_TEMPLATES)]
        c = clusters.index(f"{category}/{style}")
        mass_cluster.append(c)
        words = template.split()
        words.pop(int(rng.integers(2, len(words))))
        prefix = MASS_PREFIXES[rng.integers(len(MASS_PREFIXES))]
        colour = MASS_COLOURS[rng.integers(len(MASS_COLOURS))]
        titles.append(f"{prefix} {' '.join(words)} {colour}")
        base = CATEGORIES[cluster_category[c]].base_price
        prices.append(_shop_price(base * 0.22 * rng.uniform(0.8, 1.2)))
        popularity[n_normal + k] = rng.uniform(0.05, 0.15)
        item_seller.append(suspicious[k % len(suspicious)])
    item_cluster = np.concatenate([item_cluster, np.array(mass_cluster, dtype=int)])
    mass_produced = np.arange(n_items) >= n_normal

    # Shuffle so item ids say nothing about cluster or seller.
    order = rng.permutation(n_items)
    item_cluster = item_cluster[order]
    titles = [titles[i] for i in order]
    prices = [prices[i] for i in order]
    popularity = popularity[order]
    item_seller = [item_seller[i] for i in order]
    mass_produced = mass_produced[order]
    item_ids = [f"i_{i + 1:05d}" for i in range(n_items)]
    item_category = [CATEGORIES[cluster_category[c]].name for c in item_cluster]
    cat_trend = np.array([spec.trend for spec in CATEGORIES])
    trend = cat_trend[cluster_category[item_cluster]] + rng.normal(0.0, 0.5, n_items)
    cluster_items = [np.flatnonzero(item_cluster == c).tolist() for c in range(n_clusters)]

    phase = np.arange(days) / max(days - 1, 1) - 0.5
    weights = popularity[None, :] * np.exp(trend[None, :] * phase[:, None])
    item_cum = [
        [list(accumulate(weights[d, members].tolist())) for members in cluster_items] for d in range(days)
    ]
    weekly = np.array([spec.weekly for spec in CATEGORIES])
    dow = (weekday0 + np.arange(days)) % 7
    cluster_day = weekly[cluster_category][:, dow].T * np.exp(
        cat_trend[cluster_category][None, :] * phase[:, None]
    )
    return Catalogue(
        clusters=clusters,
        cluster_category=cluster_category,
        cluster_popularity=cluster_popularity,
        item_ids=item_ids,
        titles=titles,
        item_cluster=item_cluster,
        item_category=item_category,
        prices=prices,
        popularity=popularity,
        trend=trend,
        seller_ids=seller_ids,
        item_seller=item_seller,
        suspicious_sellers=set(suspicious),
        mass_produced=mass_produced,
        cluster_items=cluster_items,
        item_cum=item_cum,
        cluster_day=cluster_day,
    )


def _shop_price(value: float) -> float:
    """A shelf price: at least 1.99, ending in .99 or .49 like real price tags."""
    whole = max(1, math.floor(value))
    return float(whole) + (0.49 if value - whole < 0.5 else 0.99)
