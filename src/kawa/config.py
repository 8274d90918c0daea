"""kawa.yaml: a project's settings, with defaults and `KAWA__SECTION__KEY` environment overrides."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec
import yaml

from kawa.tracking.origins import normalise_origin

CONFIG_NAME = "kawa.yaml"
ENV_PREFIX = "KAWA__"


class ServerConfig(msgspec.Struct, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: int = 8642
    # API/collector processes sharing the port (SO_REUSEPORT); more than one needs an event log that
    # many processes may append to (Redis Streams).
    workers: int = 1
    # Log lines as `text` or `json` (one object per line, with the request id); docs/observability.md.
    log_format: str = "text"
    access_log: bool = False  # one `kawa.access` line per HTTP request
    tracing: str = "off"  # OpenTelemetry spans: off | otlp | console (needs kawa[otel])


class IngestConfig(msgspec.Struct, forbid_unknown_fields=True):
    max_body_bytes: int = 5_000_000
    max_event_bytes: int = 32_768
    max_depth: int = 32
    max_events_per_request: int = 10_000
    # Requests waiting for the event log beyond this many are answered 503 with Retry-After.
    max_pending_requests: int = 256
    # A request body that sends no bytes for this long is cut off with 408 (slow-body attacks).
    body_idle_timeout_s: float = 10.0
    # A request body must arrive whole within this many seconds of the request's start, else 408.
    body_timeout_s: float = 60.0


class LakeConfig(msgspec.Struct, forbid_unknown_fields=True):
    flush_interval_s: float = 1.0
    flush_max_bytes: int = 64 * 1024 * 1024
    compact_min_files: int = 16
    # Client retries re-send an event_id; ids seen within this many recent events are dropped.
    dedupe_window_events: int = 2_000_000
    # Files replaced by compaction or `kawa load` are deleted after this grace period.
    gc_grace_s: float = 60.0
    # Log records another lake writer was handed and left unacknowledged this long are taken over
    # (Redis event log, several writers); well above the longest flush, or live writers' records move.
    claim_idle_s: float = 30.0
    # This lake writer's name in the log's `lake` consumer group; a writer restarted under the same
    # name takes its unacknowledged records back at once. Empty: <hostname>-<process id>.
    consumer: str = ""


class TriggersConfig(msgspec.Struct, forbid_unknown_fields=True):
    # Trigger worker processes sharing the event log; events are split between them by entity key
    # (docs/triggers.md). More than one needs the Redis event log.
    workers: int = 1
    # A partition whose worker stopped renewing its lease this long is taken over by another worker.
    claim_idle_s: float = 10.0


class StoresConfig(msgspec.Struct, forbid_unknown_fields=True):
    event_log: str = "files"
    online: str = "lmdb"
    metadata: str = "sqlite"
    artifacts: str = "local"
    # Where pipeline steps run: `local` (a subprocess each), `ray` (the Ray cluster RAY_ADDRESS names, or
    # the one started on this machine) or `ray://host:port` (Ray Client).
    executor: str = "local"


class NotifyConfig(msgspec.Struct, forbid_unknown_fields=True):
    # Every pipeline run's status message is POSTed here as JSON when the run ends (success or failure).
    webhook: str | None = None
    timeout_s: float = 5.0


class ProjectKeys(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    write_key: str
    read_key: str
    admin_key: str
    # Web origins whose pages may send this project's events (CORS); None: any, []: none. See docs/browser.md.
    allowed_origins: list[str] | None = None

    def __post_init__(self) -> None:
        if self.allowed_origins is not None:
            self.allowed_origins = [normalise_origin(o) for o in self.allowed_origins]


class Config(msgspec.Struct, forbid_unknown_fields=True):
    project: str = "default"
    state_dir: str = ".kawa"
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    ingest: IngestConfig = msgspec.field(default_factory=IngestConfig)
    lake: LakeConfig = msgspec.field(default_factory=LakeConfig)
    triggers: TriggersConfig = msgspec.field(default_factory=TriggersConfig)
    stores: StoresConfig = msgspec.field(default_factory=StoresConfig)
    notify: NotifyConfig = msgspec.field(default_factory=NotifyConfig)
    # The project's own Python files (relative to kawa.yaml) that define feature views, pipelines and
    # models; files that do not exist are skipped.
    code: list[str] = msgspec.field(default_factory=lambda: ["features.py", "pipelines.py"])
    projects: dict[str, ProjectKeys] = msgspec.field(default_factory=dict)
    # The folder that holds kawa.yaml; relative paths resolve against it. Not read from the file.
    root: str = "."

    @property
    def state_path(self) -> Path:
        path = Path(self.state_dir)
        return path if path.is_absolute() else Path(self.root) / path


class ConfigError(ValueError):
    """kawa.yaml or an override is invalid; the message says where."""


def find_config(start: Path | None = None) -> Path | None:
    """The nearest kawa.yaml at or above `start` (the working folder by default)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
    return None


def load_config(path: Path | str | None = None, env: dict[str, str] | None = None) -> Config:
    """Read kawa.yaml (optional: defaults apply without one) and apply environment overrides.

    >>> load_config(path=None, env={"KAWA__SERVER__PORT": "9000"}).server.port
    9000
    """
    env = dict(os.environ if env is None else env)
    if path is None and "KAWA_CONFIG" in env:
        path = env["KAWA_CONFIG"]
    file = Path(path) if path is not None else find_config()
    raw: dict[str, Any] = {}
    root = Path.cwd()
    if file is not None:
        if not file.is_file():
            raise ConfigError(f"{file}: no such file; run `kawa init` to create one")
        try:
            raw = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{file}: expected a mapping at the top level")
        root = file.resolve().parent
    _apply_env(raw, env)
    raw["root"] = str(root)
    try:
        return msgspec.convert(raw, Config, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{file or 'settings'}: {exc}") from exc


def _apply_env(raw: dict[str, Any], env: dict[str, str]) -> None:
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if not parts:
            continue
        node = raw
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = yaml.safe_load(value) if value else value


def dump_config(config: Config) -> str:
    """kawa.yaml text for `config`, leaving out the derived `root`."""
    data = msgspec.to_builtins(config)
    data.pop("root", None)
    return yaml.safe_dump(data, sort_keys=False)
