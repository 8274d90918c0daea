"""The project's segments with what they delivered: for `GET /v1/segments` and `kawa segments list`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kawa.segments.store import STATUSES, DeliveryLog

if TYPE_CHECKING:
    from kawa.segments.spec import Segment
    from kawa.stores.metadata import MetadataStore


def segments_overview(
    metadata: MetadataStore, project: str, segments: dict[str, Segment]
) -> list[dict[str, Any]]:
    """Each segment in the code, and each one only the delivery log still knows, by name.

    Every entry has the segment's definition (None for a segment no longer in the code, with
    `in_code` False), its members by delivery status, its latest day and latest delivery time.
    """
    stats = DeliveryLog(metadata).summary(project)
    out = []
    for name in sorted(set(segments) | set(stats)):
        counts = stats.get(name) or {
            **dict.fromkeys(STATUSES, 0),
            "last_day": None,
            "last_delivered_at": None,
        }
        last = counts["last_delivered_at"]
        definition = segments[name].describe() if name in segments else {"name": name}
        out.append(
            {
                **definition,
                "in_code": name in segments,
                "deliveries": {s: counts[s] for s in STATUSES},
                "last_day": counts["last_day"],
                "last_delivered_at": last.isoformat() if last is not None else None,
            }
        )
    return out
