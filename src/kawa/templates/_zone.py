"""The time zone a template's hours and days are counted in, checked where a run starts."""

from __future__ import annotations

from zoneinfo import ZoneInfo


def time_zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; ValueError saying what to pass instead when there is none.

    >>> time_zone("Europe/Berlin").key
    'Europe/Berlin'
    """
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError):
        raise ValueError(
            f"timezone={name!r} is not a time zone; use an IANA name such as 'Europe/Berlin' or 'UTC'"
        ) from None
