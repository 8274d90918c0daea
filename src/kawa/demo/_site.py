"""The shop's web site as the simulation sees it: its page URLs, and the record of what visitors did there.

Events are recorded as compact tuples (a fraction of the memory of envelope dicts) and turned into
envelopes only when read; `Row` says what each slot holds.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from kawa.demo._catalogue import CATEGORIES, Catalogue

SITE = "https://shop.example"
HOME = f"{SITE}/"
CART = f"{SITE}/cart"
CHECKOUT = f"{SITE}/checkout"
LOGIN = f"{SITE}/login"
SIGNUP = f"{SITE}/signup"

# Shared, never mutated: readers copy properties into a fresh envelope.
PAGE_TYPE: dict[str, dict[str, Any]] = {
    name: {"page_type": name}
    for name in ("home", "category", "item", "reviews", "cart", "checkout", "login", "signup", "search")
}


# One recorded event: (t_ms since the window start, sequence number, event name, session index,
# user_id or None, page, item index or -1, quantity or 0, extra properties or None). A plain tuple,
# because building a NamedTuple per event costs more than the rest of recording it; sorting rows sorts
# them by time, ties in the order they happened.
Row = tuple[int, int, str, int, str | None, str, int, int, dict[str, Any] | None]


class SessionRow(NamedTuple):
    session_id: str
    visitor_id: str
    user_id: str | None  # who the visit turned out to be, also if they signed up halfway
    start_ms: int
    intent: str  # "buy", "browse", or the bot's kind
    purchased: bool


class Site:
    """Page URLs of the catalogue and the growing record of events and sessions."""

    def __init__(self, cat: Catalogue, end_ms: int) -> None:
        self.cat = cat
        self.end_ms = end_ms
        self.item_url = [f"{SITE}/items/{i}" for i in cat.item_ids]
        self.reviews_url = [f"{u}/reviews" for u in self.item_url]
        self.cluster_url = [f"{SITE}/c/{CATEGORIES[c].name}" for c in cat.cluster_category.tolist()]
        self.rows: list[Row] = []
        self.sessions: list[SessionRow] = []
        self.orders = 0
        self._purchased: set[int] = set()

    def open_session(self, visitor_id: str, user_id: str | None, start_s: float, intent: str) -> int:
        """Start a session record; returns its index."""
        index = len(self.sessions)
        self.sessions.append(
            SessionRow(f"s_{index + 1:07d}", visitor_id, user_id, int(start_s * 1000), intent, False)
        )
        return index

    def identify(self, session: int, user_id: str) -> None:
        """The visitor signed up or logged in during this session."""
        self.sessions[session] = self.sessions[session]._replace(user_id=user_id)

    def emit(
        self,
        t_s: float,
        name: str,
        session: int,
        user_id: str | None,
        page: str,
        item: int = -1,
        quantity: int = 0,
        props: dict[str, Any] | None = None,
    ) -> bool:
        """Record one event; events past the window's end are not recorded (returns False)."""
        t_ms = int(t_s * 1000)
        if t_ms >= self.end_ms:
            return False
        rows = self.rows
        rows.append((t_ms, len(rows), name, session, user_id, page, item, quantity, props))
        if name == "purchase":
            self._purchased.add(session)
        return True

    def next_order_id(self) -> str:
        self.orders += 1
        return f"o_{self.orders:07d}"

    def finish(self) -> None:
        """Mark sessions that bought and put the rows in time order."""
        for s in self._purchased:
            self.sessions[s] = self.sessions[s]._replace(purchased=True)
        self.rows.sort()
