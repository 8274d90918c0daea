"""What kawa's Redis backends share: a client from a kawa.yaml URL, and the check that Redis keeps writes.

A spec is a redis-py URL plus two options of kawa's own, removed before redis-py sees the URL:

    redis://[[user]:password@]host[:port][/db][?prefix=kawa&durability=check&<redis-py options>]
    rediss://...                  the same over TLS

`prefix` (default `kawa`) starts every key kawa writes, so two projects can share one database.
`durability` says what to do about a server that could lose acknowledged writes (see `durability`).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from kawa.observe.metrics import store_error

log = logging.getLogger("kawa.stores")

DEFAULT_URL = "redis://127.0.0.1:6379/0"
DURABILITY = ("check", "configure", "trust")
# What `appendonly yes` + `appendfsync always` guarantee: a write is in the AOF and fsynced before
# Redis replies (beforeSleep flushes the AOF, then sends replies), so an acknowledged write survives
# a crash of the server or the machine. Redis 7.0 has no WAITAOF to ask for this per command.
SAFE = {"appendonly": "yes", "appendfsync": "always"}
_AOF_ON_WAIT_S = 60.0

P = ParamSpec("P")
T = TypeVar("T")


class RedisUnavailable(ConnectionError):
    """Redis cannot be reached (an OSError, so callers handle it as any other I/O failure)."""


class UnsafeRedis(RuntimeError):
    """The Redis server could lose acknowledged writes, and the spec did not allow kawa to fix it."""


@dataclass(frozen=True)
class RedisSpec:
    """A parsed `redis://` spec: the URL for redis-py, and kawa's options."""

    url: str
    prefix: str
    durability: str

    @property
    def where(self) -> str:
        """host:port/db for messages (never the password)."""
        parts = urlsplit(self.url)
        return f"{parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"


def parse_spec(spec: str, kind: str) -> RedisSpec:
    """The URL and options of a `redis://` spec of the `kind` store; ValueError naming a bad option."""
    if "://" not in spec:
        spec = DEFAULT_URL
    parts = urlsplit(spec)
    prefix, durability = "kawa", "check"
    rest: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "prefix":
            if not value or any(c.isspace() for c in value):
                raise ValueError(f"prefix={value!r} in the {kind} spec must be non-empty, without spaces")
            prefix = value
        elif name == "durability":
            if value not in DURABILITY:
                raise ValueError(
                    f"durability={value!r} in the {kind} spec: use one of {', '.join(DURABILITY)}"
                )
            durability = value
        else:
            rest.append((name, value))  # redis-py's own options (socket_timeout=..., ...)
    url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest), ""))
    return RedisSpec(url=url, prefix=prefix, durability=durability)


# redis-py annotates its commands as returning "Awaitable[T] | T" (one set of hints for its sync and
# async clients), which no caller can use; kawa holds its sync client as Any.
Client = Any


def connect(spec: RedisSpec) -> Client:
    """A thread-safe client (a connection pool) that retries a dropped connection a few times.

    The retries ride out a restart or failover of a second or so; then RedisUnavailable. A command
    retried after its connection dropped may have run already: writes kawa sends are idempotent
    (HSET, HDEL, XACK) or deduplicated downstream by event_id (an event log append).
    """
    return redis.Redis.from_url(
        spec.url,
        socket_connect_timeout=5,
        socket_timeout=30,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=5),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        health_check_interval=30,
    )


def unavailable(where: str) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Turn redis-py's connection errors in the decorated method into RedisUnavailable saying what to do."""

    def wrap(fn: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(fn)
        def call(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                return fn(*args, **kwargs)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                store_error(where.replace("online store", "online").replace(" ", "_"))
                raise RedisUnavailable(
                    f"cannot reach the Redis of the {where} ({exc}); check that redis-server is running"
                ) from exc

        return call

    return wrap


def unsafe_settings(client: Client) -> dict[str, str]:
    """The settings of the server that let it lose acknowledged writes (empty when it is safe)."""
    found = {name: _config_get(client, name) for name in (*SAFE, "maxmemory-policy")}
    unsafe = {name: value for name, value in found.items() if name in SAFE and value != SAFE[name]}
    # allkeys-* evicts any key when memory is full, kawa's stream included; kawa's keys never
    # expire, so noeviction and the volatile-* policies never touch them.
    if found["maxmemory-policy"].startswith("allkeys-"):
        unsafe["maxmemory-policy"] = found["maxmemory-policy"]
    return unsafe


def ensure_durable(client: Client, spec: RedisSpec, kind: str, *, strict: bool) -> None:
    """Check (or with `durability=configure`, set) that Redis keeps every write it acknowledged.

    `strict`: refuse an unsafe server (the event log, whose acknowledged events must survive);
    otherwise warn (the online store, whose contents can be computed again).
    """
    if spec.durability == "trust":
        return
    try:
        unsafe = unsafe_settings(client)
    except redis.ResponseError as exc:
        message = (
            f"cannot read the durability settings of the Redis at {spec.where} for the {kind} ({exc}); "
            "if the server runs with `appendonly yes`, `appendfsync always` and no allkeys-* "
            "maxmemory-policy, add `durability=trust` to the spec in kawa.yaml"
        )
        if strict:
            raise UnsafeRedis(message) from exc
        log.warning(message)
        return
    evicting = unsafe.pop("maxmemory-policy", None)
    if unsafe and spec.durability == "configure":
        _configure(client, spec)
        unsafe = {}
    problems = []
    if unsafe:
        now = ", ".join(f"{name} {value}" for name, value in unsafe.items())
        problems.append(
            f"it runs with {now}, so a crash can lose writes it has acknowledged. Set `appendonly yes` "
            "and `appendfsync always` in redis.conf (or `redis-cli CONFIG SET appendonly yes` and "
            f"`CONFIG SET appendfsync always`), or add `durability=configure` to the {kind} spec in "
            "kawa.yaml to let kawa set them"
        )
    if evicting:
        problems.append(
            f"its maxmemory-policy {evicting} deletes any key when memory runs out, kawa's included: "
            "set `maxmemory-policy noeviction` (kawa's keys never expire, so volatile-* policies are "
            "safe as well)"
        )
    if not problems:
        return
    message = f"the Redis at {spec.where} is not safe for the {kind}: " + "; and ".join(problems)
    if strict:
        raise UnsafeRedis(message)
    log.warning("%s. The online store's contents may be lost on a crash", message)


def _config_get(client: Client, name: str) -> str:
    value = client.config_get(name).get(name)
    if value is None:
        raise redis.ResponseError(f"CONFIG GET {name} returned nothing")
    return value.decode() if isinstance(value, bytes) else str(value)


def _configure(client: Client, spec: RedisSpec) -> None:
    """CONFIG SET the safe settings, and wait until the AOF is on (Redis first rewrites it)."""
    try:
        client.config_set("appendfsync", SAFE["appendfsync"])
        client.config_set("appendonly", SAFE["appendonly"])
    except redis.ResponseError as exc:
        raise UnsafeRedis(
            f"cannot configure the Redis at {spec.where} to keep acknowledged writes ({exc}); set "
            "`appendonly yes` and `appendfsync always` in its redis.conf"
        ) from exc
    deadline = time.monotonic() + _AOF_ON_WAIT_S
    while True:
        info: dict[str, Any] = client.info("persistence")
        rewriting = info.get("aof_rewrite_in_progress") or info.get("aof_rewrite_scheduled")
        if info.get("aof_enabled") == 1 and not rewriting:
            break
        if time.monotonic() > deadline:
            raise UnsafeRedis(f"the Redis at {spec.where} did not turn its append-only file on in time")
        time.sleep(0.05)
    log.warning(
        "set appendonly yes and appendfsync always on the Redis at %s; put them in its redis.conf too, "
        "or a restart with the old file turns them off again",
        spec.where,
    )
