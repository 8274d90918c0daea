"""The artifact store: model files, bundles and logs, by relative path."""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from pathlib import Path
from typing import IO, Self

# Files being written carry this in their name until they are published; user paths may not.
TEMP_MARK = ".kawa-tmp-"
MODES = ("rb", "wb")


class ArtifactStore(ABC):
    """Files by relative, forward-slash path, such as `models/loyalty/3/model.kawa` or `runs/42/train.log`.

    Writes are atomic: a reader sees the old file or the whole new one, never a part. A path names a
    file; a prefix for `list` and `delete` names a file or everything under a folder, so `runs/1`
    never matches `runs/10`.
    """

    @classmethod
    @abstractmethod
    def from_spec(cls, spec: str, state_path: Path) -> Self:
        """The store named by `spec` in kawa.yaml, kept under `state_path` if it is embedded."""

    @abstractmethod
    def put_bytes(self, path: str, data: bytes) -> None:
        """Store `data` at `path`, replacing any file there."""

    @abstractmethod
    def put_file(self, path: str, local_path: str | Path) -> None:
        """Store a copy of the local file `local_path` at `path`, replacing any file there."""

    @abstractmethod
    def get_bytes(self, path: str) -> bytes:
        """The contents of `path`; FileNotFoundError if no file is stored there."""

    @abstractmethod
    def open(self, path: str, mode: str = "rb") -> IO[bytes]:
        """A binary file to read ("rb") or to write ("wb"; published when closed, discarded on error)."""

    @abstractmethod
    def exists(self, path: str) -> bool:
        """Whether a file is stored at `path` (a folder alone does not count)."""

    @abstractmethod
    def list(self, prefix: str = "") -> builtins.list[str]:
        """Paths of the files at or under `prefix` ("" for all), sorted."""

    @abstractmethod
    def delete(self, prefix: str) -> int:
        """Remove the file at `prefix` or everything under it; returns how many files went."""

    @abstractmethod
    def uri(self, path: str) -> str:
        """A URL for `path` that fsspec and other tools can open, such as `file:///srv/kawa/...`."""

    def close(self) -> None:  # noqa: B027 - optional for backends with nothing to release
        """Release files and connections."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_path(path: str) -> str:
    """`path` if it is a safe relative file path; ValueError saying what is wrong otherwise."""
    if not isinstance(path, str) or not path:
        raise ValueError(f"artifact path {path!r} is empty; {_EXAMPLE}")
    if path.startswith("/") or "\\" in path or "\x00" in path:
        raise ValueError(f"artifact path {path!r} must be relative, with forward slashes; {_EXAMPLE}")
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise ValueError(f"artifact path {path!r} may not contain empty, '.' or '..' parts; {_EXAMPLE}")
        if TEMP_MARK in segment:
            raise ValueError(
                f"artifact path {path!r} may not contain {TEMP_MARK!r}, kawa's mark for partial files"
            )
    return path


def check_prefix(prefix: str) -> str:
    """`prefix` without a trailing slash if it is "" or a safe relative path; ValueError otherwise."""
    if prefix == "":
        return prefix
    return check_path(prefix[:-1] if prefix.endswith("/") else prefix)


def check_mode(mode: str) -> None:
    """Refuse modes other than "rb" and "wb"."""
    if mode not in MODES:
        raise ValueError(f"artifact files open in mode 'rb' or 'wb', not {mode!r}")


_EXAMPLE = "use a relative path with forward slashes, such as 'models/loyalty/3/model.kawa'"
