"""docs/reference/config.md: every kawa.yaml key with its type, default, environment variable and meaning.

The meanings are the comments written above each field of the msgspec structs in `kawa.config`.
"""

from __future__ import annotations

import inspect
import io
import re
import textwrap
import tokenize
import types
import typing
from collections.abc import Iterator
from typing import Any

import msgspec

from kawa._docs._md import GENERATED, code, table
from kawa.config import ENV_PREFIX, Config, ProjectKeys

# Fields kawa fills in itself rather than reading them from the file.
DERIVED = {"root"}
_FIELD = re.compile(r"^\s+(\w+)\s*:")

# Meanings of the settings whose code carries no comment; a comment above the field in kawa.config wins.
HINTS = {
    "Config": {
        "project": "The project (tenant) the CLI works on when no --project is given.",
        "state_dir": "Where kawa keeps its state (event log, lake, metadata, online store, artifacts), "
        "relative to kawa.yaml; see the operations guide for backing it up.",
        "projects": "The projects (tenants) and their keys; see below.",
    },
    "ServerConfig": {
        "host": "The address `kawa serve` listens on; 0.0.0.0 to accept other machines.",
        "port": "The port of the HTTP API, the collector and the web UI.",
    },
    "IngestConfig": {
        "max_body_bytes": "Largest request body, after gzip is undone; a larger one gets 413.",
        "max_event_bytes": "Largest single event; a larger one is rejected with its reason, the rest kept.",
        "max_depth": "Deepest JSON nesting of an event; deeper bodies get 400 before parsing goes deep.",
        "max_events_per_request": "Most events one request may carry.",
    },
    "LakeConfig": {
        "flush_interval_s": "How often the lake writer publishes new events as Parquet (the SQL freshness).",
        "flush_max_bytes": "Most bytes of log records one read of a flush takes (one file per read); a "
        "writer that is behind reads again until it has caught up.",
        "compact_min_files": "A day partition's small files are merged once it has this many.",
    },
    "StoresConfig": {
        "event_log": "`files` (segment files in state_dir) or `redis://host:port/db` (Redis Streams).",
        "online": "`lmdb` (in state_dir), `memory` (tests) or `redis://host:port/db`.",
        "metadata": "`sqlite` (in state_dir), `sqlite:///path` or `postgresql://user:pass@host/db`.",
        "artifacts": "`local` (state_dir/artifacts) or an fsspec URL such as `s3://bucket/prefix`.",
    },
    "NotifyConfig": {"timeout_s": "How long a webhook POST may take."},
    "ProjectKeys": {
        "write_key": "May only send events; safe inside web pages.",
        "read_key": "Reads predictions, models, runs and tables.",
        "admin_key": "Everything else, SQL included.",
    },
}


def settings(
    struct: type[msgspec.Struct] = Config, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    """The dotted path of every leaf setting under `struct`: ("server", "port"), ("project",), ..."""
    for field in msgspec.structs.fields(struct):
        if field.name in DERIVED:
            continue
        if _is_struct(field.type):
            yield from settings(field.type, (*prefix, field.name))
        else:
            yield (*prefix, field.name)


def config_markdown() -> str:
    """The kawa.yaml reference page."""
    lines = [
        GENERATED,
        "",
        "# Configuration: kawa.yaml",
        "",
        "`kawa.yaml` sits at a project's root (`kawa init` writes it); kawa finds it from the working "
        "folder up, or takes the file `KAWA_CONFIG` names. Every setting has a default, so the file may "
        "leave any of them out, and every setting can be overridden by an environment variable "
        f"`{ENV_PREFIX}SECTION__KEY` (its value is read as YAML: `KAWA__SERVER__PORT=9000`, "
        "`KAWA__STORES__ONLINE=redis://host:6379/0`). "
        "An unknown key is an error that names it.",
        "",
    ]
    top = [f for f in msgspec.structs.fields(Config) if f.name not in DERIVED]
    lines += ["## Top level", ""]
    lines += table(
        ["key", "type", "default", "environment", "meaning"],
        [_row(f, ()) for f in top if not _is_struct(f.type)],
    )
    for field in top:
        if _is_struct(field.type):
            lines += [f"## {field.name}", ""]
            if _comments(Config).get(field.name):
                lines += [_comments(Config)[field.name], ""]
            lines += table(
                ["key", "type", "default", "environment", "meaning"],
                [_row(f, (field.name,), field.type) for f in msgspec.structs.fields(field.type)],
            )
    lines += [
        "## projects",
        "",
        "One entry per project (tenant), keyed by its name. `kawa init` and `kawa keys create` write them; "
        "kawa stores the keys hashed, and writes the file with mode 600 because it holds the admin key.",
        "",
        *table(
            ["key", "type", "default", "meaning"],
            [
                (
                    code(f"projects.NAME.{f.name}"),
                    _type_name(f.type),
                    _default(f),
                    _comments(ProjectKeys).get(f.name, ""),
                )
                for f in msgspec.structs.fields(ProjectKeys)
            ],
        ),
    ]
    return "\n".join(lines).rstrip() + "\n"


def _row(field: msgspec.structs.FieldInfo, prefix: tuple[str, ...], owner: type = Config) -> tuple[str, ...]:
    path = (*prefix, field.name)
    env = ENV_PREFIX + "__".join(p.upper() for p in path)
    return (
        code(".".join(path)),
        _type_name(field.type),
        _default(field),
        code(env),
        _comments(owner).get(field.name, ""),
    )


def _comments(struct: type) -> dict[str, str]:
    """What the code says about each field of `struct`: the comment on its line, or the lines right above."""
    lines = inspect.getsource(struct).splitlines()
    inline: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(textwrap.dedent("\n".join(lines))).readline):
        if token.type == tokenize.COMMENT and token.line.strip() != token.string:
            inline[token.start[0] - 1] = token.string.lstrip("#").strip()
    found: dict[str, str] = {}
    pending: list[str] = []
    for number, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        match = _FIELD.match(line)
        if match and (number in inline or pending):
            found[match.group(1)] = inline.get(number) or " ".join(pending)
        pending = []
    return {**HINTS.get(struct.__name__, {}), **found}


def _is_struct(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, msgspec.Struct)


def _type_name(kind: Any) -> str:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in typing.get_args(kind)]
        return " or ".join("null" if n == "NoneType" else n for n in names)
    if origin is list:
        return f"list of {_type_name(typing.get_args(kind)[0])}"
    if origin is dict:
        return "mapping"
    name = getattr(kind, "__name__", str(kind))
    return {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(name, name)


def _default(field: msgspec.structs.FieldInfo) -> str:
    if field.default is not msgspec.NODEFAULT:
        value = field.default
    elif field.default_factory is not msgspec.NODEFAULT:
        value = field.default_factory()
    else:
        return "required"
    if value is None:
        return code("null")
    if value == "":
        return code('""')
    if isinstance(value, list):
        return code("[" + ", ".join(str(v) for v in value) + "]")
    if isinstance(value, dict):
        return code("{}")
    return code(value)
