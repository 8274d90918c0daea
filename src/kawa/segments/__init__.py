"""Segments: users picked by SQL over the warehouse, each new member delivered once per day.

    from kawa.schedule import Schedule
    from kawa.segments import Segment, Webhook

    cart_abandonment = Segment(
        "cart_abandonment",
        '''
        SELECT c.keys.user_id AS user_id, max(c.item_id) AS item_id
        FROM events c
        WHERE c.event_name = 'cart_add' AND c.sync_date <= $logical_date - INTERVAL 24 HOURS
          AND NOT EXISTS (SELECT 1 FROM events p WHERE p.event_name = 'purchase'
                          AND p.keys.user_id = c.keys.user_id AND p.sync_date >= c.sync_date)
        GROUP BY 1
        ''',
        destination=Webhook("https://push.example.com/kawa", batch_size=500),
        schedule=Schedule(start="2026-12-01T00:00", every="1h"),
    )

A segment is a pipeline (run by the scheduler, listed by `kawa runs`); its deliveries are kept in the
metadata store (`kawa segments log`, `GET /v1/segments/{name}/deliveries`). See docs/segments.md.
"""

from __future__ import annotations

from kawa.segments.destinations import Destination, DestinationError, Export, Webhook
from kawa.segments.overview import segments_overview
from kawa.segments.run import run_segment
from kawa.segments.spec import Segment, SegmentDefinitionError, SegmentError, find_segment, project_segments
from kawa.segments.store import Delivery, DeliveryLog

__all__ = [
    "Delivery",
    "DeliveryLog",
    "Destination",
    "DestinationError",
    "Export",
    "Segment",
    "SegmentDefinitionError",
    "SegmentError",
    "Webhook",
    "find_segment",
    "project_segments",
    "run_segment",
    "segments_overview",
]
