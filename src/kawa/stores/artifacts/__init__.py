"""The artifact store interface and its backends, chosen by `stores.artifacts` in kawa.yaml."""

from __future__ import annotations

from pathlib import Path

from kawa.stores._backends import load_backend
from kawa.stores.artifacts.base import ArtifactStore

# name -> (module, class, extra that installs its dependencies). A URL picks the backend named by its
# scheme if there is one ("file" is the local folder), else fsspec, which knows s3://, gs://, memory://...
BACKENDS: dict[str, tuple[str, str, str | None]] = {
    "local": ("kawa.stores.artifacts.local", "LocalArtifactStore", None),
    "file": ("kawa.stores.artifacts.local", "LocalArtifactStore", None),
    "fsspec": ("kawa.stores.artifacts.fsspec", "FsspecArtifactStore", None),
}


def open_artifacts(spec: str, state_path: Path) -> ArtifactStore:
    """The artifact store named by `spec`: `local` (under `state_path`) or a URL such as `s3://bucket/kawa`.

    >>> store = open_artifacts("memory://kawa-doctest/artifacts", Path("."))
    >>> store.put_bytes("runs/1/train.log", b"epoch 1 loss 0.3")
    >>> store.list("runs")
    ['runs/1/train.log']
    """
    scheme = spec.split("://", 1)[0] if "://" in spec else None
    name = spec if scheme is None else scheme if scheme in BACKENDS else "fsspec"
    cls = load_backend("artifact store", name, BACKENDS)
    return cls.from_spec(spec, state_path)  # type: ignore[no-any-return]


__all__ = ["BACKENDS", "ArtifactStore", "open_artifacts"]
