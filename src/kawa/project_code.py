"""A project's own Python files (`code` in kawa.yaml), imported and searched for pipelines, features, ...

Nothing registers itself globally (as in Hamilton): an object is found because it sits at the top
level of one of those files and its class has a `__kawa_kind__` ("pipeline", "feature_view", "label",
"stream_view", "trigger", "bandit").
Files are imported under module names unique to the project folder, so two projects, or a project
file called like an installed package, never mix. While loading, a file may import another of the
project's files by its plain name (`import features` in pipelines.py) and gets that same module.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from kawa.config import Config


class ProjectCodeError(ImportError):
    """A project code file cannot be imported, or two of its objects share a kind and a name."""


def load(config: Config) -> dict[str, dict[str, object]]:
    """Import the project's code files and return their kawa objects as {kind: {name: object}}.

    Missing files are skipped. An import error names the file and line; two different objects of one
    kind with one name are refused, naming where each is defined.
    """
    root = Path(config.root).resolve()
    files = [_resolve(root, name) for name in config.code]
    modules = _Importer(root, [f for f in files if f.is_file()]).import_all()
    return collect(modules)


def collect(modules: Sequence[ModuleType]) -> dict[str, dict[str, object]]:
    """The kawa objects at the top level of `modules`, by kind and name (see `load`)."""
    found: dict[str, dict[str, object]] = {}
    where: dict[tuple[str, str], str] = {}
    for module in modules:
        for variable, obj in vars(module).items():
            kind = getattr(type(obj), "__kawa_kind__", None)
            if not isinstance(kind, str) or variable.startswith("__"):
                continue
            name = getattr(obj, "name", None)
            if not isinstance(name, str) or not name:
                raise ProjectCodeError(f"{_file(module)}: {variable} is a {kind} without a name")
            place = f"{_file(module)} ({variable})"
            known = found.setdefault(kind, {})
            if name in known:
                # The same object imported into a second file is one definition, not two.
                if known[name] is not obj:
                    raise ProjectCodeError(
                        f"two {kind}s are named {name!r}: {where[kind, name]} and {place}; rename one of them"
                    )
                continue
            known[name] = obj
            where[kind, name] = place
    return found


def files_signature(config: Config, *extra: str) -> tuple[tuple[str, int, int], ...]:
    """(path, mtime_ns, size) of each code file and of `extra` files beside kawa.yaml that exist: it
    changes when one of them is edited, so a long-running part knows when to load them again."""
    root = Path(config.root)
    out = []
    for name in (*config.code, *extra):
        path = _resolve(root, name)
        try:
            stat = path.stat()
        except OSError:
            continue
        out.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(out)


def declarations(text_or_path: str | Path, key: str) -> tuple[str, list[Any]]:
    """The list under `key` in a YAML file of declarations (`triggers.yaml`, `bandits.yaml`), given as
    text or a path, and the name to cite in errors; ValueError, naming the file, if it holds no such list.

    >>> declarations("bandits: []", "bandits")
    ('bandits.yaml', [])
    """
    where = str(text_or_path) if isinstance(text_or_path, Path) else f"{key}.yaml"
    text = text_or_path.read_text() if isinstance(text_or_path, Path) else text_or_path
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{where}: not valid YAML: {exc}") from None
    items = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(items, list) or set(doc) - {key}:
        raise ValueError(f"{where}: expected a mapping with one key, {key}: a list of {key}")
    return where, items


def _resolve(root: Path, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else root / path


def _file(module: ModuleType) -> str:
    return str(getattr(module, "__file__", None) or module.__name__)


class _Importer(importlib.abc.MetaPathFinder):
    """Imports project files under unique names, resolving plain-name imports between them."""

    def __init__(self, root: Path, files: list[Path]) -> None:
        self.root = root
        digest = hashlib.sha1(str(root).encode()).hexdigest()[:10]
        self.prefix = f"kawa_project_{digest}_"
        self.files = {_stem(f): f for f in files}
        self.loaded: dict[str, ModuleType] = {}

    def import_all(self) -> list[ModuleType]:
        added_path = str(self.root) not in sys.path
        if added_path:
            # Helper modules beside the project files (not listed in `code`) import by plain name.
            sys.path.insert(0, str(self.root))
        sys.meta_path.insert(0, self)
        try:
            for stem in self.files:
                self._load(stem)
            return list(self.loaded.values())
        finally:
            sys.meta_path.remove(self)
            if added_path:
                sys.path.remove(str(self.root))
            # Plain names bound by imports between project files are dropped again, so the next
            # project loaded in this process does not see this one's `features`.
            for stem, module in self.loaded.items():
                if sys.modules.get(stem) is module:
                    del sys.modules[stem]

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if path is not None or fullname not in self.files:
            return None
        module = self._load(fullname)
        return importlib.util.spec_from_loader(fullname, _Loaded(module))

    def _load(self, stem: str) -> ModuleType:
        if stem in self.loaded:
            return self.loaded[stem]  # also while it is still running: a circular import, as in Python
        path = self.files[stem]
        name = self.prefix + re.sub(r"\W", "_", stem)
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ProjectCodeError(f"{path}: cannot be imported as Python code")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        self.loaded[stem] = module
        try:
            spec.loader.exec_module(module)
        except BaseException as exc:
            sys.modules.pop(name, None)
            self.loaded.pop(stem, None)
            if isinstance(exc, KeyboardInterrupt | ProjectCodeError):
                raise  # a project file this one imported failed: that error names the file
            raise ProjectCodeError(_describe(path, exc)) from exc
        return module


class _Loaded(importlib.abc.Loader):
    """Hands an already imported project module to an `import` statement."""

    def __init__(self, module: ModuleType) -> None:
        self.module = module

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return self.module

    def exec_module(self, module: ModuleType) -> None:
        pass


def _stem(path: Path) -> str:
    return path.name[: -len(".py")] if path.name.endswith(".py") else path.name


def _describe(path: Path, exc: BaseException) -> str:
    """`path:line: error`, the line being where in `path` it went wrong, plus the traceback's tail."""
    if isinstance(exc, SyntaxError) and exc.filename and Path(exc.filename).resolve() == path.resolve():
        return f"{path}:{exc.lineno}: {type(exc).__name__}: {exc.msg}; fix the file and run again"
    line: Any = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename).resolve() == path.resolve():
            line = frame.lineno
    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    where = f"{path}:{line}" if line is not None else str(path)
    return f"{where}: importing it raised {detail}; fix the file and run again"
