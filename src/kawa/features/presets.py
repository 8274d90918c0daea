"""Ready feature views: RFM and engagement of a shop's users, usable as they are on the demo shop."""

from __future__ import annotations

from kawa.features import agg
from kawa.features.entity import USER, Entity
from kawa.features.view import FeatureView

PURCHASE = "event_name = 'purchase'"


def rfm_view(entity: Entity = USER, name: str = "rfm") -> FeatureView:
    """Recency, frequency and money of purchases, plus engagement (views, carts, sessions, categories)."""
    return FeatureView(
        name,
        entity,
        {
            "days_since_last_purchase": agg.days_since_last(where=PURCHASE),
            "purchases_30d": agg.count(where=PURCHASE, window="30d"),
            "purchases_90d": agg.count(where=PURCHASE, window="90d"),
            "revenue_30d": agg.sum("revenue", where=PURCHASE, window="30d"),
            "revenue_90d": agg.sum("revenue", where=PURCHASE, window="90d"),
            "avg_order_value_90d": agg.avg("revenue", where=PURCHASE, window="90d"),
            "views_7d": agg.count(where="event_name = 'view'", window="7d"),
            "views_30d": agg.count(where="event_name = 'view'", window="30d"),
            "cart_adds_30d": agg.count(where="event_name = 'cart_add'", window="30d"),
            "cart_removes_30d": agg.count(where="event_name = 'cart_remove'", window="30d"),
            "sessions_30d": agg.count(where="event_name = 'session_start'", window="30d"),
            "categories_viewed": agg.count_distinct("category", where="event_name = 'view'"),
            "days_since_last_seen": agg.days_since_last(),
            "days_since_first_seen": agg.days_since_first(),
        },
        description="RFM and engagement of users: recency, purchases and revenue over 30/90 days, "
        "views, cart adds, sessions, distinct categories viewed, days since first and last seen",
    )


RFM = rfm_view()
