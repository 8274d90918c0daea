"""Which web origins may send a project's events from a browser (`projects.<name>.allowed_origins`).

A project's write key is public (it ships inside web pages), so an origin list does not stop a
determined sender (curl sets any Origin it likes); it stops other web sites' pages from making their
visitors' browsers send events with your key. Entries are `*` (any origin), `scheme://host[:port]`, or
`scheme://*.host[:port]` (any subdomain of host, not host itself).

No list (the default) allows any origin, as Segment's and PostHog's hosted APIs do; an empty list
allows none (server-side senders only). A request from the kawa server's own origin is always allowed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_ORIGIN = re.compile(r"(https?)://(\*\.)?([a-z0-9.-]+|\[[0-9a-f:.]+\])(?::(\d{1,5}))?")
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def normalise_origin(entry: str) -> str:
    """An `allowed_origins` entry in the form browsers send in `Origin`; ValueError says what is wrong.

    >>> normalise_origin("https://Shop.Example:443/")
    'https://shop.example'
    >>> normalise_origin("http://*.shop.example:8080")
    'http://*.shop.example:8080'
    """
    text = entry.strip().lower().removesuffix("/")
    if text == "*":
        return text
    match = _ORIGIN.fullmatch(text)
    if match is None:
        raise ValueError(
            f"allowed_origins entry {entry!r} is not an origin; write '*', scheme://host[:port] "
            "(e.g. https://shop.example) or scheme://*.host (every subdomain), without a path"
        )
    scheme, wildcard, host, port = match.groups()
    port_part = f":{port}" if port and port != _DEFAULT_PORTS[scheme] else ""
    return f"{scheme}://{wildcard or ''}{host}{port_part}"


def _matches(pattern: str, origin: str) -> bool:
    if pattern in ("*", origin):
        return True
    if "://*." not in pattern:
        return False
    scheme, _, rest = pattern.partition("://*.")
    head, sep, tail = origin.partition("://")
    # "https://*.shop.example" matches https://a.shop.example and https://a.b.shop.example.
    return bool(sep) and head == scheme and tail.endswith("." + rest) and len(tail) > len(rest) + 1


class OriginPolicy:
    """Per-project allowed origins; a project missing from `allowed` (or mapped to None) allows any.

    >>> policy = OriginPolicy({"shop": ["https://shop.example"], "blog": None})
    >>> policy.allows("shop", "https://shop.example"), policy.allows("shop", "https://evil.example")
    (True, False)
    >>> policy.allows("blog", "https://evil.example"), policy.allows_any("https://evil.example")
    (True, True)
    """

    def __init__(self, allowed: Mapping[str, Iterable[str] | None]) -> None:
        self._allowed = {
            project: None if origins is None else tuple(normalise_origin(o) for o in origins)
            for project, origins in allowed.items()
        }
        # With any project open to every origin, a preflight (which carries no key) passes for all.
        self._open = (
            any(origins is None or "*" in origins for origins in self._allowed.values()) or not self._allowed
        )

    def allows(self, project: str, origin: str) -> bool:
        """Whether a page at `origin` may send events with a key of `project`."""
        origins = self._allowed.get(project)
        if origins is None:
            return True
        origin = origin.lower()
        return any(_matches(pattern, origin) for pattern in origins)

    def allows_any(self, origin: str) -> bool:
        """Whether some project allows `origin` (the answer to a preflight, which names no project)."""
        if self._open:
            return True
        origin = origin.lower()
        return any(
            _matches(pattern, origin) for origins in self._allowed.values() for pattern in origins or ()
        )
