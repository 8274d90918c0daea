"""The HTTP API under /v1: a thin face over the parts."""

from kawa.api.app import create_app

__all__ = ["create_app"]
