"""`python -m kawa._docs [FOLDER]`: write the generated reference pages (default docs/reference)."""

from __future__ import annotations

import sys
from pathlib import Path

from kawa._docs import write_reference


def main(argv: list[str]) -> None:
    folder = Path(argv[0]) if argv else Path("docs/reference")
    for path in write_reference(folder):
        print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
