"""Bandits as declared: arms, policy, how rewards are found in the event stream, and optional context.

A bandit is declared in the project's code (a top-level `Bandit`, found like triggers) or in
`bandits.yaml` beside kawa.yaml. `POST /v1/bandits/{name}/choose` picks an arm and records the
decision; the reward worker of `kawa serve` then counts a reward for that decision when an event
carrying its `decision_id` matches `reward_on`, or when the same user sends an event matching
`purchase_on` within `window` of the decision (see docs/bandits.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from kawa.bandits.policies import Policy, PolicyError, Thompson, policy_from_spec
from kawa.project_code import declarations
from kawa.streaming import Field, Match, StreamError

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_CONTEXT_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_ARMS = 100
MAX_CONTEXT_KEYS = 4
MAX_ARM_CHARS = 128
MAX_CONTEXT_VALUE_CHARS = 64
_FIELDS = (
    "name",
    "arms",
    "policy",
    "reward_on",
    "purchase_on",
    "user_key",
    "window",
    "context",
    "description",
)


class BanditError(ValueError):
    """A bandit declaration (or a request to one) is invalid; the message says what to change."""


class Bandit:
    """Choose among `arms` with `policy`; rewards come from the event stream, never from an extra call.

    >>> b = Bandit("ranking", arms=["bm25", "learned"], policy="epsilon_greedy")
    >>> b.policy, b.window
    (EpsilonGreedy(epsilon=0.1), datetime.timedelta(days=1))
    >>> b.context_of({"device": "mobile"})
    Traceback (most recent call last):
    ...
    kawa.bandits.spec.BanditError: bandit 'ranking' takes no context; declare context=['device'] to use it
    """

    __kawa_kind__ = "bandit"

    def __init__(
        self,
        name: str,
        *,
        arms: Sequence[str],
        policy: str | Mapping[str, Any] | Policy = "thompson",
        reward_on: Mapping[str, Any] | Match | None = None,
        purchase_on: Mapping[str, Any] | Match | None = None,
        user_key: str = "keys.user_id",
        window: str | float | timedelta = "24h",
        context: Sequence[str] = (),
        description: str = "",
    ) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise BanditError(
                f"bandit name {name!r} is not allowed; "
                "use letters, digits, '_' or '-', starting with a letter"
            )
        self.name = name
        at = f"bandit {name!r}"
        self.arms = _check_arms(at, arms)
        try:
            self.policy = policy_from_spec(policy if policy is not None else Thompson())
        except PolicyError as exc:
            raise BanditError(f"{at}: {exc}") from None
        try:
            self.reward_on = Match.from_spec(reward_on, where=f"{at}: reward_on")
            self.purchase_on = (
                None if purchase_on is None else Match.from_spec(purchase_on, where=f"{at}: purchase_on")
            )
            self.user_key = user_key
            self.user_field = Field(user_key, where=f"{at}: user_key")
        except StreamError as exc:
            raise BanditError(str(exc)) from None
        if self.purchase_on is not None and self.purchase_on.matches_all:
            raise BanditError(
                f"{at}: purchase_on matches every event; name the event, e.g. {{'event_name': 'purchase'}}"
            )
        self.window = parse_window(window, where=f"{at}: window")
        self.context = _check_context(at, context)
        self.description = description

    def context_of(self, values: Mapping[str, Any] | None) -> str:
        """The context a choice is made in: `key=value` pairs in declared order, "" without context.

        A declared key that is missing gets the value "-"; a key not declared is refused (a typo would
        otherwise put every choice in one context without anyone noticing).
        """
        values = values or {}
        if not isinstance(values, Mapping):
            raise BanditError(f"context must be an object of {', '.join(self.context) or 'no'} keys")
        at = f"bandit {self.name!r}"
        unknown = sorted(k for k in values if k not in self.context)
        if unknown:
            if not self.context:
                raise BanditError(f"{at} takes no context; declare context=[{unknown[0]!r}] to use it")
            raise BanditError(
                f"{at}: unknown context key {unknown[0]!r}; its keys are {', '.join(self.context)}"
            )
        parts = []
        for key in self.context:
            value = values.get(key)
            if value is None:
                text = "-"
            elif isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, str | int | float):
                text = str(value)
            else:
                raise BanditError(f"{at}: context {key!r} must be a text, number or boolean, not {value!r}")
            if not text or len(text) > MAX_CONTEXT_VALUE_CHARS or any(c in text for c in ",=\x00"):
                raise BanditError(
                    f"{at}: context {key!r} value {text[:80]!r} must be 1-{MAX_CONTEXT_VALUE_CHARS} "
                    "characters without ',' or '='; use a few values (device, country), not ids"
                )
            parts.append(f"{key}={text}")
        return ",".join(parts)

    def describe(self) -> dict[str, Any]:
        """The declaration as JSON: what `kawa bandits show` and `GET /v1/bandits` show."""
        return {
            "name": self.name,
            "arms": list(self.arms),
            "policy": self.policy.describe(),
            "reward_on": dict(self.reward_on.spec),
            "purchase_on": None if self.purchase_on is None else dict(self.purchase_on.spec),
            "user_key": self.user_key,
            "window_s": self.window.total_seconds(),
            "context": list(self.context),
            "description": self.description,
        }

    def __repr__(self) -> str:
        return f"Bandit({self.name!r}, arms={list(self.arms)!r}, policy={self.policy!r})"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Bandit:
        """A bandit from parsed YAML/JSON."""
        if not isinstance(data, Mapping):
            raise BanditError(f"a bandit must be a mapping of {', '.join(_FIELDS)}, not {data!r}")
        name = data.get("name")
        unknown = [k for k in data if k not in _FIELDS]
        if unknown:
            raise BanditError(f"bandit {name!r}: unknown field {unknown[0]!r}; use {', '.join(_FIELDS)}")
        missing = [k for k in ("name", "arms") if k not in data]
        if missing:
            raise BanditError(f"bandit {name!r}: {', '.join(missing)} missing")
        return cls(**{str(k): v for k, v in data.items()})


def bandits_from_yaml(text_or_path: str | Path) -> list[Bandit]:
    """The bandits of a YAML document (`bandits: [...]`), given as text or as a file path."""
    try:
        where, items = declarations(text_or_path, "bandits")
    except ValueError as exc:
        raise BanditError(str(exc)) from None
    try:
        return [Bandit.from_mapping(item) for item in items]
    except BanditError as exc:
        raise BanditError(f"{where}: {exc}") from None


def parse_window(value: str | float | timedelta, *, where: str = "window") -> timedelta:
    """A duration from seconds, a timedelta, or text such as "30m", "24h", "7d".

    >>> parse_window("36h"), parse_window(90)
    (datetime.timedelta(days=1, seconds=43200), datetime.timedelta(seconds=90))
    """
    seconds: float | None = None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (found := _DURATION.fullmatch(value.strip())):
        seconds = float(found.group(1)) * _UNITS[found.group(2)]
    if seconds is None or not 0 < seconds <= 366 * 86400:
        raise BanditError(
            f"{where} {value!r} must be a positive duration of at most a year: seconds, or text such as "
            "'30m', '24h', '7d'"
        )
    return timedelta(seconds=seconds)


def _check_arms(at: str, arms: Sequence[str]) -> tuple[str, ...]:
    if isinstance(arms, str) or not isinstance(arms, Sequence):
        raise BanditError(f"{at}: arms must be a list of names, e.g. ['control', 'variant']")
    out = tuple(arms)
    if not 2 <= len(out) <= MAX_ARMS:
        raise BanditError(f"{at}: a bandit needs 2 to {MAX_ARMS} arms, not {len(out)}")
    for arm in out:
        if (
            not isinstance(arm, str)
            or not arm.strip()
            or len(arm) > MAX_ARM_CHARS
            or any(ord(c) < 32 for c in arm)
        ):
            raise BanditError(f"{at}: arm {arm!r} must be a name of 1-{MAX_ARM_CHARS} printable characters")
    doubled = sorted({a for a in out if out.count(a) > 1})
    if doubled:
        raise BanditError(f"{at}: arm {doubled[0]!r} is listed twice")
    return out


def _check_context(at: str, keys: Sequence[str]) -> tuple[str, ...]:
    if isinstance(keys, str) or not isinstance(keys, Sequence):
        raise BanditError(f"{at}: context must be a list of key names, e.g. ['device']")
    out = tuple(keys)
    if len(out) > MAX_CONTEXT_KEYS:
        raise BanditError(f"{at}: at most {MAX_CONTEXT_KEYS} context keys; each adds a bandit per value")
    for key in out:
        if not isinstance(key, str) or not _CONTEXT_KEY.fullmatch(key):
            raise BanditError(f"{at}: context key {key!r} must be a plain name such as 'device'")
    if len(set(out)) != len(out):
        raise BanditError(f"{at}: context lists a key twice")
    return out
