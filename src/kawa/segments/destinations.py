"""Where a segment's new members go: a webhook (batched POSTs) or an export folder (a file per day)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from kawa.segments.store import Batch, DeliveryLog


MAX_DESCRIPTION = 512  # characters of segment_deliveries.destination


class DestinationError(ValueError):
    """A destination declared with settings kawa cannot use; the message says what to write."""


@dataclass
class Job:
    """One run's delivery: the batches it claimed for a segment and day, and the log to settle them in."""

    project: str
    segment: str
    entity: str
    day: date
    run_id: str
    root: Path  # the project's folder; relative export folders are under it
    batches: list[Batch]
    log: DeliveryLog


@dataclass
class Report:
    """How a delivery went: members and batches delivered, members not delivered, and the first error."""

    delivered: int = 0
    batches: int = 0
    failed: int = 0
    error: str | None = None
    files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Webhook:
    """POST new members to `url` as JSON, `batch_size` at a time, each batch with an Idempotency-Key.

    A batch answered with 5xx, 408, 425 or 429, or not answered within `timeout_s`, is sent again up
    to `attempts` times in all, `backoff_s` doubling between tries; another 4xx fails it at once.
    `headers` are sent with every POST (e.g. an Authorization header); `name` is how the delivery
    log shows it (default: "webhook" and the URL's origin, so no secret in its path is shown).

    >>> Webhook("https://push.example.com/hooks/s3cret").describe()
    'webhook https://push.example.com'
    """

    url: str
    batch_size: int = 500
    attempts: int = 5
    backoff_s: float = 1.0
    timeout_s: float = 10.0
    headers: Mapping[str, str] = field(default_factory=dict)
    name: str | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.url) if isinstance(self.url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise DestinationError(
                f"Webhook url {self.url!r} must be an http:// or https:// URL, e.g. "
                "'https://push.example.com/kawa'"
            )
        _positive_int("batch_size", self.batch_size, 10_000)
        _positive_int("attempts", self.attempts, 100)
        for what, value in (("backoff_s", self.backoff_s), ("timeout_s", self.timeout_s)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise DestinationError(f"Webhook {what}={value!r} must be a number of seconds, 0 or more")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in dict(self.headers).items()):
            raise DestinationError("Webhook headers must map header names to text values")
        if self.name is not None and not (isinstance(self.name, str) and self.name.strip()):
            raise DestinationError(f"Webhook name={self.name!r} must be a non-empty text, e.g. 'braze'")
        _fits_the_log(self.describe(), "Webhook name")

    def describe(self) -> str:
        if self.name:
            return self.name
        parts = urlsplit(self.url)
        port = f":{parts.port}" if parts.port else ""
        return f"webhook {parts.scheme}://{parts.hostname}{port}"

    def deliver(self, job: Job) -> Report:
        from kawa.segments.webhook import post_batches

        return post_batches(self, job)


@dataclass(frozen=True)
class Export:
    """Write each day's members to `folder/<segment>-<day>.csv` (or `.parquet`), rewritten as it grows.

    The day's file holds every member delivered to this export that day, so a rerun rewrites it with
    the same rows plus the new ones. A relative `folder` is under the project's folder.

    >>> Export("exports/segments", format="parquet").describe()
    'parquet exports/segments'
    """

    folder: str
    format: Literal["csv", "parquet"] = "csv"

    batch_size = None  # one batch per run: the members a run adds to the day's file

    def __post_init__(self) -> None:
        if not isinstance(self.folder, str) or not self.folder.strip():
            raise DestinationError(f"Export folder {self.folder!r} must be a folder path, e.g. 'exports'")
        if self.format not in ("csv", "parquet"):
            raise DestinationError(f"Export format {self.format!r} must be 'csv' or 'parquet'")
        _fits_the_log(self.describe(), "Export folder")

    def describe(self) -> str:
        return f"{self.format} {self.folder}"

    def path(self, root: Path, segment: str, day: date) -> Path:
        """The file of `segment`'s members delivered on `day`."""
        folder = Path(self.folder).expanduser()
        return (
            folder if folder.is_absolute() else root / folder
        ) / f"{segment}-{day.isoformat()}.{self.format}"

    def deliver(self, job: Job) -> Report:
        from kawa.segments.export import write_day

        return write_day(self, job)


Destination = Webhook | Export


def _fits_the_log(described: str, what: str) -> None:
    """The delivery log keeps a destination's description in MAX_DESCRIPTION characters."""
    if len(described) > MAX_DESCRIPTION:
        raise DestinationError(
            f"{what} makes the destination {described[:60]!r}... {len(described)} characters long; the "
            f"delivery log keeps at most {MAX_DESCRIPTION}: use a shorter one"
        )


def _positive_int(what: str, value: object, most: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise DestinationError(f"Webhook {what}={value!r} must be a whole number from 1 to {most}")
