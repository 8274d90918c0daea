"""Pick a backend by the short name or URL in kawa.yaml, importing it only when it is used."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any


class BackendError(ValueError):
    """A store name in kawa.yaml names no backend, or the backend's extra is not installed."""


def load_backend(kind: str, spec: str, table: Mapping[str, tuple[str, str, str | None]]) -> Any:
    """The class for `spec` (a short name such as `lmdb`, or a URL whose scheme names the backend)."""
    name = spec.split("://", 1)[0] if "://" in spec else spec
    try:
        module_name, class_name, extra = table[name]
    except KeyError:
        known = ", ".join(sorted(table))
        raise BackendError(f"unknown {kind} backend {spec!r}; use one of: {known}") from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f"; install kawa[{extra}] to use the {name} {kind}" if extra else ""
        raise BackendError(f"cannot load the {name} {kind} backend: {exc}{hint}") from exc
    return getattr(module, class_name)
