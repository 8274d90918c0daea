"""kawa: a self-hosted ML platform for behavioural event data."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "connect"]

if TYPE_CHECKING:
    from kawa.notebook import connect


def __getattr__(name: str) -> Any:
    # `kawa.connect` imports the notebook layer on first use, so `import kawa` stays light.
    if name == "connect":
        from kawa.notebook import connect

        return connect
    raise AttributeError(f"module 'kawa' has no attribute {name!r}")
