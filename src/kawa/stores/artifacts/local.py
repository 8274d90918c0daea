"""The embedded artifact store: files in a local folder, written atomically and fsynced."""

from __future__ import annotations

import builtins
import os
import shutil
from functools import partial
from pathlib import Path
from typing import IO, Self

from kawa.stores.artifacts._atomic import StagedWriter, copy_durably, replace_durably, temp_beside
from kawa.stores.artifacts.base import TEMP_MARK, ArtifactStore, check_mode, check_path, check_prefix


class LocalArtifactStore(ArtifactStore):
    """Artifacts as plain files under `root`, laid out exactly as their paths say."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).absolute()
        self.root.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_spec(cls, spec: str, state_path: Path) -> Self:
        if spec.startswith("file://"):
            return cls(spec.removeprefix("file://"))
        return cls(state_path / "artifacts")

    def put_bytes(self, path: str, data: bytes) -> None:
        with self.open(path, "wb") as f:
            f.write(data)

    def put_file(self, path: str, local_path: str | Path) -> None:
        copy_durably(Path(local_path), self._full(path))

    def get_bytes(self, path: str) -> bytes:
        with self.open(path, "rb") as f:
            return f.read()

    def open(self, path: str, mode: str = "rb") -> IO[bytes]:
        check_mode(mode)
        full = self._full(path)
        if mode == "wb":
            return StagedWriter(temp_beside(full), partial(replace_durably, target=full))
        try:
            return open(full, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise FileNotFoundError(f"no artifact {path!r} in {self.root}") from None

    def exists(self, path: str) -> bool:
        return self._full(path).is_file()

    def list(self, prefix: str = "") -> builtins.list[str]:
        prefix = check_prefix(prefix)
        top = self.root / prefix if prefix else self.root
        if top.is_file():
            return [prefix]
        found: builtins.list[str] = []
        for folder, _dirs, files in os.walk(top):
            rel = Path(folder).relative_to(self.root).as_posix()
            base = "" if rel == "." else rel + "/"
            found.extend(base + name for name in files if TEMP_MARK not in name)
        return sorted(found)

    def delete(self, prefix: str) -> int:
        if not prefix:
            raise ValueError("delete needs a prefix; to empty the whole artifact store, remove its folder")
        prefix = check_prefix(prefix)
        doomed = self.list(prefix)
        target = self.root / prefix
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
        return len(doomed)

    def uri(self, path: str) -> str:
        return self._full(path).as_uri()

    def _full(self, path: str) -> Path:
        return self.root / check_path(path)
