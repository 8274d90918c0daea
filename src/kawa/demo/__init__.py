"""The demo shop: deterministic synthetic shop data with structure kawa's use cases can learn."""

from __future__ import annotations

from kawa.demo.shop import (
    Events,
    Item,
    Seller,
    SessionTruth,
    Shop,
    ShopConfig,
    UserTruth,
    generate,
    iter_ndjson_batches,
)

__all__ = [
    "Events",
    "Item",
    "Seller",
    "SessionTruth",
    "Shop",
    "ShopConfig",
    "UserTruth",
    "generate",
    "iter_ndjson_batches",
]
