"""`python -m kawa._docs [FOLDER]`: write the generated reference pages (default docs/reference), with
CHANGELOG.md of the working folder as changelog.md."""

from __future__ import annotations

import sys
from pathlib import Path

from kawa._docs import write_reference


def main(argv: list[str]) -> None:
    folder = Path(argv[0]) if argv else Path("docs/reference")
    changelog = Path("CHANGELOG.md")
    for path in write_reference(folder, changelog if changelog.is_file() else None):
        print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
