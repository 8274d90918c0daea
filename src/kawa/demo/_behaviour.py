"""How a human visit moves through the shop, page by page.

A visit either means to buy or to browse (the chance grows with hidden loyalty). Both see the same
kinds of pages, but in a different order, which is what a sequence model can learn:
- buying: product -> reviews -> back to the same product -> cart_add -> cart -> checkout -> purchase,
  with drop-off before the cart, at the cart (abandonment) and at checkout;
- browsing: menus and search lead to products; reviews lead on to other products; a cart left from an
  earlier visit is looked at first; now and then an impulse cart_add, usually abandoned.
Carts outlive visits, so an abandoned cart is often bought later.
"""

from __future__ import annotations

from typing import Any

from kawa.demo._catalogue import CATEGORIES, Catalogue
from kawa.demo._draws import Draws
from kawa.demo._population import PersonaSpec
from kawa.demo._site import CART, CHECKOUT, HOME, LOGIN, PAGE_TYPE, SIGNUP, SITE, Site

# (name, referrer URL, extra session properties), and how likely each is before loyalty adjusts it.
REFERRERS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("direct", "", {}),
    ("search", "https://www.google.com/", {}),
    ("email", "https://mail.shop.example/", {"utm_source": "newsletter", "utm_medium": "email"}),
    ("social", "https://www.instagram.com/", {"utm_source": "instagram", "utm_medium": "social"}),
    ("ads", "https://www.google.com/", {"utm_source": "google", "utm_medium": "cpc"}),
)
USER_AGENTS = {
    "mobile": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36",
    ),
    "desktop": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari/605.1.15",
    ),
    "tablet": (
        "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1",
    ),
}
COUPONS = ("SAVE10", "WELCOME5", "FREESHIP")
PAYMENTS = ("card", "card", "paypal", "apple_pay")


class Shopper:
    """What one visit needs to know about who is visiting, and what outlives the visit."""

    __slots__ = ("affinity_cum", "cart", "device", "persona", "recent", "score", "user_id", "visitor_id")

    def __init__(
        self,
        persona: PersonaSpec,
        score: float,
        affinity_cum: list[float],
        user_id: str | None,
        visitor_id: str,
        device: str,
    ) -> None:
        self.persona = persona
        self.score = score
        self.affinity_cum = affinity_cum
        self.user_id = user_id  # None until the visitor signs up
        self.visitor_id = visitor_id
        self.device = device
        self.cart: dict[int, int] = {}  # item -> quantity, outlives visits
        self.recent: list[int] = []  # last items viewed, for coming back to them


class Visit:
    """The page-by-page walk of one human visit."""

    def __init__(
        self, site: Site, draws: Draws, shopper: Shopper, session: int, t: float, day: int, cluster: int
    ):
        self.site, self.draws, self.who = site, draws, shopper
        self.session, self.t, self.day, self.cluster = session, t, day, cluster
        self.cat: Catalogue = site.cat
        self.page = "home"
        self.item = -1
        self.viewed: list[int] = []
        # The account a not-yet-registered user makes if this visit signs up.
        self.future_user_id: str | None = None

    # -- recording ---------------------------------------------------------------------------------

    def emit(
        self, name: str, page: str, item: int = -1, quantity: int = 0, props: dict[str, Any] | None = None
    ) -> bool:
        return self.site.emit(self.t, name, self.session, self.who.user_id, page, item, quantity, props)

    def wait(self, median: float = 18.0) -> None:
        """Time passes while the visitor reads the page."""
        self.t += min(600.0, max(1.5, self.draws.lognormal(median * self.who.persona.length, 0.8)))

    def view(
        self, kind: str, item: int = -1, props: dict[str, Any] | None = None, pause: bool = True
    ) -> None:
        if pause:
            self.wait()
        site = self.site
        if kind == "item":
            page = site.item_url[item]
            self.viewed.append(item)
        elif kind == "reviews":
            page = site.reviews_url[item]
        elif kind == "category":
            page = site.cluster_url[self.cluster]
        else:
            page = {"home": HOME, "cart": CART, "checkout": CHECKOUT}[kind]
        self.page, self.item = kind, item
        self.emit("view", page, item, props=props or PAGE_TYPE[kind])

    # -- choices -----------------------------------------------------------------------------------

    def pick_item(self) -> int:
        """An item of the visit's cluster by popularity and trend, leaning to the cheaper or the dearer."""
        members = self.cat.cluster_items[self.cluster]
        cum = self.cat.item_cum[self.day][self.cluster]
        first = members[self.draws.pick(cum)]
        lean = self.who.persona.price_lean
        if self.draws.chance(abs(lean)):
            second = members[self.draws.pick(cum)]
            if (self.cat.prices[second] < self.cat.prices[first]) == (lean > 0):
                return second
        return first

    def switch_cluster(self) -> None:
        self.cluster = self.draws.pick(self.who.affinity_cum)

    def search(self) -> None:
        """A search for the cluster's kind of product: the results page."""
        self.wait()
        spec = CATEGORIES[int(self.cat.cluster_category[self.cluster])]
        nouns = spec.styles[self.cluster % 3][1]
        query = nouns[self.draws.index(len(nouns))].lower()
        results = len(self.cat.cluster_items[self.cluster]) + self.draws.index(5)
        page = f"{SITE}/search?q={query.replace(' ', '+')}"
        self.page, self.item = "search", -1
        self.emit("search", page, props={"page_type": "search", "query": query, "results": results})

    def click_result(self, item: int) -> None:
        position = 1 + min(self.draws.geometric(1.5), 19)
        self.view("item", item, props={"page_type": "item", "list": "search", "position": position})

    def browse_step(self, impulse: float) -> None:
        """One step of a browsing walk from the current page."""
        d, r, page = self.draws, self.draws.u(), self.page
        search = self.who.persona.search * 0.4
        if page == "search":
            if r < 0.85:
                self.click_result(self.pick_item())
            else:
                self.search()
        elif page == "home":
            if r < search:
                self.search()
            elif r < 0.8:
                self.view("category")
            else:
                self.view("item", self.pick_item())
        elif page == "category":
            if r < 0.75:
                self.view("item", self.pick_item())
            elif r < 0.87:
                self.switch_cluster()
                self.view("category")
            else:
                self.search()
        elif page == "item":
            if r < 0.32:
                self.view("item", self.pick_item())
            elif r < 0.40:
                # Something else the shopper likes: this is what links clusters for recommendations.
                self.switch_cluster()
                self.view("item", self.pick_item())
            elif r < 0.56:
                self.view("reviews", self.item)
            elif r < 0.70:
                self.view("category")
            elif r < 0.70 + search:
                self.search()
            elif r < 0.88 and len(self.viewed) > 1:
                # Back to something seen earlier, but not straight after reading its reviews.
                self.view("item", self.viewed[d.index(len(self.viewed) - 1)])
            else:
                self.view("home")
        elif page == "reviews":
            if r < 0.6:
                self.view("item", self.pick_item())
            elif r < 0.85:
                self.view("category")
            else:
                self.search()
        else:
            self.view("home")
        if self.page == "item" and d.chance(impulse):
            self.cart_add(self.item)

    def cart_add(self, item: int) -> None:
        self.t += self.draws.lognormal(6.0, 0.5)
        grocery = self.cat.item_category[item] == "grocery"
        quantity = 1 + self.draws.geometric(1.2 if grocery else 0.15)
        if self.emit("cart_add", self.site.item_url[item], item, quantity, PAGE_TYPE["item"]):
            self.who.cart[item] = self.who.cart.get(item, 0) + quantity

    # -- the two kinds of visit --------------------------------------------------------------------

    def land(self, referrer: int) -> None:
        """session_start on the landing page the referrer leads to, plus that page's view."""
        name, url, extra = REFERRERS[referrer]
        d = self.draws
        if name == "direct" or (name == "email" and d.chance(0.5)):
            kind, item = "home", -1
        elif name == "search" and d.chance(0.4):
            kind, item = "category", -1
        else:
            kind, item = "item", self.pick_item()
        who = self.who
        agents = USER_AGENTS[who.device]
        props: dict[str, Any] = {
            "referrer": url,
            "device": who.device,
            "user_agent": agents[sum(map(ord, who.visitor_id)) % len(agents)],
            **extra,
        }
        if kind == "item":
            landing = self.site.item_url[item]
        elif kind == "category":
            landing = self.site.cluster_url[self.cluster]
        else:
            landing = HOME
        self.emit("session_start", landing, props=props)
        self.t += 0.05  # the landing page's view follows session_start at once
        self.view(kind, item, pause=False)

    def browse(self, signup_chance: float) -> None:
        d, who = self.draws, self.who
        if d.chance(0.55 if who.cart else 0.15):
            self.view("cart")
            self.view("home" if d.chance(0.5) else "category")
        if who.user_id is None and d.chance(signup_chance):
            self.sign_up()
        impulse = 0.05 * (0.5 + who.score)
        added = len(who.cart)
        for _ in range(d.geometric(3.5 * who.persona.length)):
            self.browse_step(impulse)
        if len(who.cart) > added and d.chance(0.45):
            self.view("cart")
            if d.chance(0.08):
                self.checkout()

    def buy(self) -> None:
        d, who = self.draws, self.who
        for _ in range(d.geometric(1.2 * who.persona.length)):
            self.browse_step(0.0)
        recent = [i for i in who.recent if self.cat.item_cluster[i] == self.cluster]
        target = recent[d.index(len(recent))] if recent and d.chance(0.4) else self.pick_item()
        if self.item != target:
            if self.page == "search" or d.chance(who.persona.search * 0.5):
                if self.page != "search":
                    self.search()
                self.click_result(target)
            else:
                self.view("item", target)
        r = d.u()
        if r < 0.55:
            self.view("reviews", target)
            self.view("item", target)
        elif r < 0.8:
            self.view("item", self.pick_item())
            self.view("item", target)
        if d.chance(0.12):
            return
        self.cart_add(target)
        for _ in range(d.geometric(who.persona.basket)):
            other = self.pick_item()
            self.view("item", other)
            self.cart_add(other)
        self.view("cart")
        for item in list(who.cart):
            if item != target and d.chance(0.25):
                self.t += d.lognormal(4.0, 0.5)
                if self.emit("cart_remove", CART, item, who.cart[item], PAGE_TYPE["cart"]):
                    del who.cart[item]
        if d.chance(0.12):
            return
        self.checkout()

    def checkout(self) -> None:
        d, who = self.draws, self.who
        if who.user_id is None:
            self.sign_up()
            if who.user_id is None:
                return
        self.view("checkout")
        if not who.cart or not d.chance(0.55 + 0.35 * who.score):
            return
        self.t += d.lognormal(45.0, 0.5)
        order = self.site.next_order_id()
        props: dict[str, Any] = {"order_id": order, "payment": PAYMENTS[d.index(len(PAYMENTS))]}
        if d.chance(who.persona.coupon):
            props["coupon"] = COUPONS[d.index(len(COUPONS))]
        bought = False
        for k, (item, quantity) in enumerate(who.cart.items()):
            bought |= self.site.emit(
                self.t + k / 1000, "purchase", self.session, who.user_id, CHECKOUT, item, quantity, props
            )
        if bought:
            who.cart.clear()

    def sign_up(self) -> None:
        """An anonymous visitor makes their account; later events carry their user_id."""
        user_id = self.future_user_id
        if user_id is None:
            return
        self.wait()
        self.who.user_id = user_id
        self.site.identify(self.session, user_id)
        self.emit("signup", SIGNUP, props=PAGE_TYPE["signup"])
        self.future_user_id = None

    def login(self) -> None:
        self.t += self.draws.lognormal(8.0, 0.5)
        self.emit("login", LOGIN, props=PAGE_TYPE["login"])
