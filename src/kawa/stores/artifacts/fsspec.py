"""An artifact store on any fsspec file system: s3://, gs://, az://, memory:// and others.

Writes are staged in a local temporary file and uploaded whole when it is closed, so a reader sees
the old object or the new one: object stores publish an object only once its upload completes.
Plain `file://` URLs go to the local backend instead (see `open_artifacts`), which fsyncs and renames.
"""

from __future__ import annotations

import builtins
import os
import secrets
import tempfile
from functools import partial
from pathlib import Path
from typing import IO, Any, Self, cast

import fsspec
from fsspec.implementations.local import LocalFileSystem

from kawa.stores._backends import BackendError
from kawa.stores.artifacts._atomic import StagedWriter
from kawa.stores.artifacts.base import TEMP_MARK, ArtifactStore, check_mode, check_path, check_prefix


class FsspecArtifactStore(ArtifactStore):
    """Artifacts under the fsspec URL `url`, e.g. `s3://bucket/kawa/artifacts`."""

    def __init__(self, url: str, **storage_options: Any) -> None:
        try:
            fs, root = fsspec.core.url_to_fs(url, **storage_options)
        except (ImportError, ValueError) as exc:
            raise BackendError(
                f"cannot open the artifact store at {url!r}: {exc}; fsspec needs the package for this "
                "protocol (s3fs for s3://, gcsfs for gs://, adlfs for az://)"
            ) from exc
        if isinstance(fs, LocalFileSystem) and not fs.auto_mkdir:
            # Object stores have no folders to make; a local disk needs them before a write.
            fs, root = fsspec.core.url_to_fs(url, **{**storage_options, "auto_mkdir": True})
        self.url = url
        self.fs: fsspec.AbstractFileSystem = fs
        self._root = str(root).rstrip("/")

    @classmethod
    def from_spec(cls, spec: str, state_path: Path) -> Self:
        if "://" not in spec:
            raise BackendError(
                f"the fsspec artifact store needs a URL such as s3://bucket/kawa, not {spec!r}"
            )
        return cls(spec)

    def put_bytes(self, path: str, data: bytes) -> None:
        self.fs.pipe_file(self._full(path), data)

    def put_file(self, path: str, local_path: str | Path) -> None:
        full = self._full(path)
        if not Path(local_path).is_file():
            raise FileNotFoundError(f"no local file {str(local_path)!r} to store at {path!r}")
        self.fs.put_file(os.fspath(local_path), full)

    def get_bytes(self, path: str) -> bytes:
        try:
            return cast(bytes, self.fs.cat_file(self._full(path)))
        except (FileNotFoundError, IsADirectoryError):
            raise FileNotFoundError(f"no artifact {path!r} in {self.url}") from None

    def open(self, path: str, mode: str = "rb") -> IO[bytes]:
        check_mode(mode)
        full = self._full(path)
        if mode == "wb":
            temp = Path(tempfile.gettempdir()) / f"{TEMP_MARK}{secrets.token_hex(8)}"
            return StagedWriter(temp, partial(self._upload, full=full))
        if not self.fs.isfile(full):
            raise FileNotFoundError(f"no artifact {path!r} in {self.url}")
        return cast(IO[bytes], self.fs.open(full, "rb"))

    def exists(self, path: str) -> bool:
        return bool(self.fs.isfile(self._full(path)))

    def list(self, prefix: str = "") -> builtins.list[str]:
        prefix = check_prefix(prefix)
        top = f"{self._root}/{prefix}" if prefix else self._root
        skip = len(self._root) + 1
        return sorted(name[skip:] for name in self.fs.find(top) if TEMP_MARK not in name)

    def delete(self, prefix: str) -> int:
        if not prefix:
            raise ValueError("delete needs a prefix; to empty the whole artifact store, remove its folder")
        prefix = check_prefix(prefix)
        doomed = self.list(prefix)
        top = f"{self._root}/{prefix}"
        if self.fs.isdir(top):
            self.fs.rm(top, recursive=True)
        elif doomed:
            self.fs.rm(top)
        return len(doomed)

    def uri(self, path: str) -> str:
        return str(self.fs.unstrip_protocol(self._full(path)))

    def _full(self, path: str) -> str:
        return f"{self._root}/{check_path(path)}"

    def _upload(self, temp: Path, *, full: str) -> None:
        self.fs.put_file(str(temp), full)
