"""How recommendations are computed: which events count and how much, and how items are compared."""

from __future__ import annotations

from typing import Any

import msgspec

SIMILARITIES = ("cosine", "jaccard")
SCOPES = ("user", "session")


class Options(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every knob of item-to-item collaborative filtering, each with a default that suits a web shop.

    - `weights`: how strongly each event says "interested in this item"; a user's weight for an item is
      the strongest event they sent about it (a purchase outweighs the views that led to it).
    - `similarity`: `cosine` (weighted co-occurrence over the two items' norms) or `jaccard` (weighted
      Jaccard, sum of min over sum of max; with equal weights it is |A and B| / |A or B|).
    - `scope`: what counts as "together": the same `user` (a signed-in user, else the anonymous visitor)
      over the whole history, or the same `session`.
    - `neighbours`: similar items kept per item; `recent`: a user's latest items that their
      recommendations are scored from; `max_basket`: a user's (or session's) latest items that take
      part in co-occurrence, so that a bot sweeping the catalogue cannot make every pair.
    - `purchase_event`: the event that means bought; `exclude_purchased` leaves those items out.
    - `popular_days`: the days of events popularity counts; `fill_popular` tops a short personal list
      up with popular items.
    - `seen`: above 0, a user's own items (viewed or carted, not bought) count as this similar to
      themselves, so they come back in the user's list; 0 is pure item-to-item CF.

    >>> Options(similarity="jaccard").similarity
    'jaccard'
    >>> Options(neighbours=0)
    Traceback (most recent call last):
    ...
    ValueError: neighbours=0 must be a whole number of at least 1 (similar items kept per item, e.g. 50)
    """

    weights: dict[str, float] = msgspec.field(
        default_factory=lambda: {"view": 1.0, "cart_add": 3.0, "purchase": 5.0}
    )
    similarity: str = "cosine"  # cosine | jaccard (checked below, with a message naming the choices)
    scope: str = "user"  # user | session
    neighbours: int = 50
    recent: int = 20
    max_basket: int = 200
    purchase_event: str = "purchase"
    exclude_purchased: bool = True
    popular_days: int = 14
    fill_popular: bool = True
    seen: float = 0.0

    def __post_init__(self) -> None:
        if self.similarity not in SIMILARITIES:
            raise ValueError(
                f"similarity={self.similarity!r} is not known; use one of {', '.join(SIMILARITIES)}"
            )
        if self.scope not in SCOPES:
            raise ValueError(f"scope={self.scope!r} is not known; use one of {', '.join(SCOPES)}")
        if not self.weights:
            raise ValueError(
                "weights is empty; give each event that shows interest a weight, e.g. {'view': 1}"
            )
        for name, weight in self.weights.items():
            if not isinstance(weight, int | float) or isinstance(weight, bool) or not weight > 0:
                raise ValueError(
                    f"weights[{name!r}]={weight:g} must be a number above 0; leave the event out instead"
                )
        for name, value, example in (
            ("neighbours", self.neighbours, 50),
            ("recent", self.recent, 20),
            ("max_basket", self.max_basket, 200),
            ("popular_days", self.popular_days, 14),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(
                    f"{name}={value!r} must be a whole number of at least 1 "
                    f"({_MEANING[name]}, e.g. {example})"
                )
        if isinstance(self.seen, bool) or not isinstance(self.seen, int | float) or not self.seen >= 0:
            raise ValueError(f"seen={self.seen!r} must be a number of at least 0 (0: pure item-to-item CF)")

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Options:
        """Options from a pipeline's parameters; names that are not options are ignored."""
        known = {k: v for k, v in params.items() if k in cls.__struct_fields__}
        try:
            return msgspec.convert(known, cls)
        except msgspec.ValidationError as exc:
            raise ValueError(f"recommendation options: {exc}") from None


_MEANING = {
    "neighbours": "similar items kept per item",
    "recent": "a user's latest items their recommendations are scored from",
    "max_basket": "latest items per user or session that count for co-occurrence",
    "popular_days": "days of events that popularity counts",
}
