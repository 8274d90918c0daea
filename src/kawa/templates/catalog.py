"""The catalogue of templates: every module of `kawa.templates` that declares a `TEMPLATE` is one.

A template module holds ready pipelines (and the segments, triggers or bandits that go with them) for one
use case, runs on the demo shop as it is, and is adapted by editing its SQL and parameters:

    TEMPLATE = Template(
        name="loyalty",
        summary="will a user buy in the next 14 days? a LightGBM score per user, coupon A or B",
        pipelines=("loyalty",),
    )

`templates()` finds them all, so a new template needs no registration beyond its own module.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Template:
    """One use case: its name, a one-line summary, and the names of the pipelines its module defines."""

    name: str
    summary: str
    pipelines: tuple[str, ...]
    # Other top-level names of the module a project gets with it (segments, triggers, bandits, views).
    extras: tuple[str, ...] = field(default=())
    # Extra packages it needs (e.g. "kawa[torch]"), shown next to it; empty when the base install does.
    needs: str = ""


def templates() -> dict[str, tuple[Template, str]]:
    """Every template by name, with the module that declares it (`kawa.templates.<module>`)."""
    import kawa.templates as package

    found: dict[str, tuple[Template, str]] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "catalog":
            continue
        module = importlib.import_module(f"kawa.templates.{info.name}")
        template = getattr(module, "TEMPLATE", None)
        if isinstance(template, Template):
            if template.name in found:
                raise ValueError(
                    f"two templates are named {template.name!r}: kawa.templates.{info.name} and "
                    f"{found[template.name][1]}; rename one"
                )
            found[template.name] = (template, module.__name__)
    return found
