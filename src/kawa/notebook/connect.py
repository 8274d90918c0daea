"""`kawa.connect()`: a project from its folder (the kawa.yaml found from here upwards), or a server's URL."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, overload

from kawa.config import CONFIG_NAME, find_config

if TYPE_CHECKING:
    from kawa.notebook.local import LocalProject
    from kawa.notebook.remote import RemoteProject

KEY_ENV = "KAWA_KEY"


@overload
def connect(path: str | os.PathLike[str] | None = None, *, project: str | None = None) -> LocalProject: ...


@overload
def connect(*, url: str, key: str | None = None, timeout: float = 30.0) -> RemoteProject: ...


def connect(
    path: str | os.PathLike[str] | None = None,
    *,
    url: str | None = None,
    key: str | None = None,
    project: str | None = None,
    timeout: float = 30.0,
) -> LocalProject | RemoteProject:
    """A kawa project to work with from a notebook.

    Without `url`: the project whose kawa.yaml is in `path` (a folder or the file itself) or, without
    a path, the one KAWA_CONFIG names or the nearest kawa.yaml at or above the working folder; its
    stores are opened directly, as the `kawa` CLI opens them. `project` picks another project of that
    kawa.yaml. With `url`: a running `kawa serve`, reached with `key` (default: $KAWA_KEY).
    """
    if url is not None:
        if path is not None or project is not None:
            raise ValueError("give a project folder (path=) or a server (url=, key=), not both")
        key = key or os.environ.get(KEY_ENV)
        if not key:
            raise ValueError(
                f"connecting to {url} needs a key of the project: kawa.connect(url=..., key=...) or set "
                f"{KEY_ENV}; the admin key can do everything, a read key reads predictions, models and runs"
            )
        from kawa.notebook.remote import RemoteProject

        return RemoteProject(url, key, timeout=timeout)
    return _local(config_path(path), project)


def config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The kawa.yaml a local connection opens; FileNotFoundError saying what to do when there is none."""
    if path is None and "KAWA_CONFIG" in os.environ:
        path = os.environ["KAWA_CONFIG"]
    start = Path.cwd() if path is None else Path(path).expanduser()
    if start.is_file():
        return start
    if path is not None and not start.exists():
        raise FileNotFoundError(f"{start}: no such folder or file; give the folder that holds {CONFIG_NAME}")
    found = find_config(start)
    if found is None:
        raise FileNotFoundError(
            f"no {CONFIG_NAME} in {start.resolve()} or any folder above it; open the notebook in a kawa "
            "project (`kawa demo` makes one in ./kawa-demo, `kawa init` starts one), or pass its folder: "
            "kawa.connect('path/to/project')"
        )
    return found


def _local(file: Path, project: str | None) -> LocalProject:
    import msgspec

    from kawa.auth import validate_project_name
    from kawa.config import load_config
    from kawa.notebook.local import LocalProject

    config = load_config(file)
    if project is not None:
        validate_project_name(project)
        config = msgspec.structs.replace(config, project=project)
    return LocalProject(config)
