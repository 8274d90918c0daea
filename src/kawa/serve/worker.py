"""One part of `kawa serve` as its own process: `python -m kawa.serve.worker PART` (see PARTS)."""

from __future__ import annotations

import gc
import logging
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from kawa.config import load_config
from kawa.runtime import Runtime
from kawa.serve._signals import set_on_stop_signals


def heartbeat_path(state_path: Path, part: str) -> Path:
    return state_path / "run" / f"{part}.alive"


def part_alive(state_path: Path, part: str, within_s: float = 5.0) -> bool:
    """Whether `kawa serve`'s `part` (lake, triggers, scheduler) beat in the last `within_s` seconds."""
    try:
        beat = heartbeat_path(state_path, part).read_text().split()[0]
        return time.time() - float(beat) < within_s
    except (OSError, ValueError, IndexError):
        return False


def server_url_path(state_path: Path) -> Path:
    """Where a ready `kawa serve` writes the URL it listens on, for CLI commands run beside it."""
    return state_path / "run" / "server.url"


def running_server_url(state_path: Path) -> str | None:
    """The URL of the `kawa serve` running over `state_path`, if one said it is ready."""
    try:
        return server_url_path(state_path).read_text().strip() or None
    except OSError:
        return None


def run_api(part: str = "api") -> None:
    import uvicorn

    from kawa.api import create_app

    runtime = Runtime(load_config(), log_writer=True)
    server = runtime.config.server
    app = create_app(runtime)
    # The modules and app made so far live as long as the process: keep them out of every garbage
    # collection, which would otherwise walk ~100,000 objects now and then while requests wait.
    gc.freeze()
    config = uvicorn.Config(
        app,
        host=server.host,
        port=server.port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=5,
        # JSON logs: uvicorn's loggers go through kawa's handler instead of uvicorn's own text format.
        log_config=None if server.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
    )
    if server.workers == 1:
        uvicorn.Server(config).run()
        return
    # Several API processes: each binds the port itself with SO_REUSEPORT and the kernel spreads new
    # connections over them. Only `api` answers the supervisor's /healthz; each says it lives here.
    stop = threading.Event()
    beat = _start_heartbeat(heartbeat_path(runtime.state_path, part), runtime.event_log.end_offset, stop)
    try:
        uvicorn.Server(config).run(sockets=[_shared_socket(server.host, server.port)])
    finally:
        stop.set()
        beat.unlink(missing_ok=True)


def _shared_socket(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port) that other processes may bind too (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_lake() -> None:
    from kawa.lake.writer import LakeWriter
    from kawa.stores.eventlog import open_event_log

    config = load_config()
    runtime = Runtime(config)
    log = open_event_log(config.stores.event_log, runtime.state_path, writer=False)
    # Unique per process unless configured: several lake writers may share a Redis log's group, and
    # one restarted under a new name has its unacknowledged records claimed after `claim_idle_s`.
    consumer = config.lake.consumer or f"{_host()}-{os.getpid()}"
    writer = LakeWriter(log, runtime.lake_root, config.lake, consumer=consumer)
    stop = _stop_on_signals()
    beat = _start_heartbeat(heartbeat_path(runtime.state_path, "lake"), lambda: writer.offset, stop)
    logging.getLogger("kawa").info("lake writer %s started at log offset %d", consumer, writer.offset)
    try:
        writer.run(stop)
    finally:
        writer.close()
        log.close()
        beat.unlink(missing_ok=True)


def run_triggers(part: str = "triggers") -> None:
    from kawa.models import Registry
    from kawa.project_code import ProjectCodeError
    from kawa.stores.eventlog import open_event_log
    from kawa.stores.online import open_online_store
    from kawa.triggers import TriggerError, load_triggers
    from kawa.triggers._partition import Partition, partition_key
    from kawa.triggers.runner import PartitionRunner
    from kawa.triggers.worker import TriggerWorker

    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per delivered result is noise
    config = load_config()
    runtime = Runtime(config)
    log = open_event_log(config.stores.event_log, runtime.state_path, writer=False)
    # LMDB's durability flags belong to a process's handle. This one commits without fsync: a commit
    # under ingest load waits ~3 ms for the disk, most of the real-time latency budget. A killed
    # process loses nothing (committed pages are in the OS cache), and `checkpoint()` fsyncs every
    # half second; see docs/triggers.md for what a power cut can do. Explicit options are honoured.
    spec = "lmdb://?sync=false" if config.stores.online == "lmdb" else config.stores.online
    online = open_online_store(spec, runtime.state_path)
    registry = Registry(runtime.metadata, runtime.artifacts)
    keys = config.projects.get(config.project)
    count = config.triggers.workers
    try:
        triggers = list(load_triggers(config).values())
        if count > 1:
            partition_key(triggers)  # refuses triggers that cannot be split by one entity key
    except (ProjectCodeError, TriggerError) as exc:
        # The rest of kawa serve works without triggers: say why they are off instead of a restart loop.
        logging.getLogger("kawa.triggers").error("triggers are off: %s; fix it and restart kawa serve", exc)
        triggers = []
    # On a shared (Redis) log each partition reads through its consumer group under this name.
    holder = f"{_host()}-{os.getpid()}"
    grouped = config.stores.event_log != "files"
    if count > 1 and not grouped:
        # The file log has no leases: every process would take every partition.
        raise SystemExit("triggers.workers > 1 needs the Redis event log (docs/backends.md); set it to 1")

    def make(partition: Partition) -> TriggerWorker:
        return TriggerWorker(
            project=config.project,
            triggers=triggers,
            event_log=log,
            online=online,
            registry=registry,
            api_url=f"http://{_connect_host(config.server.host)}:{config.server.port}",
            write_key=keys.write_key if keys is not None else None,
            partition=partition,
            consumer=holder if grouped else None,
        )

    preferred = int(part.rpartition("-")[2]) - 1 if part != "triggers" else 0
    runner = PartitionRunner(
        log, make, count=count, preferred=preferred, holder=holder, claim_idle_s=config.triggers.claim_idle_s
    )
    stop = _stop_on_signals()

    def checkpoint() -> None:
        try:
            runner.checkpoint()
        except OSError:
            logging.getLogger("kawa").exception("cannot store the trigger worker's log checkpoint")

    beat = _start_heartbeat(
        heartbeat_path(runtime.state_path, part),
        lambda: runner.offset,
        stop,
        every_beat=checkpoint,
        ready=runner.ready,
    )
    # Models and project code loaded so far live as long as the process: keep them out of collections.
    gc.freeze()
    try:
        runner.run(stop)
    finally:
        online.close()
        registry.close()
        log.close()
        runtime.close()
        beat.unlink(missing_ok=True)


def run_bandits() -> None:
    from kawa.bandits.service import RewardService

    service = RewardService(load_config())
    stop = _stop_on_signals()

    def checkpoint() -> None:
        # An error here must not end the heartbeat thread: the part would look dead while it works.
        try:
            service.checkpoint()
        except Exception:
            logging.getLogger("kawa.bandits").exception("cannot store the reward worker's log checkpoint")

    beat = _start_heartbeat(
        heartbeat_path(service.runtime.state_path, "bandits"), lambda: service.worker.offset, stop,
        every_beat=checkpoint,
    )  # fmt: skip
    try:
        service.run(stop)
    finally:
        service.close()
        beat.unlink(missing_ok=True)


def run_scheduler() -> None:
    from kawa.schedule.service import run_service

    config = load_config()
    stop = _stop_on_signals()
    run_service(config, heartbeat_path(config.state_path, "scheduler"), stop)


def _stop_on_signals() -> threading.Event:
    """An event that SIGTERM and SIGINT set: the part finishes its work and exits cleanly."""
    return set_on_stop_signals(threading.Event())


def _start_heartbeat(
    beat: Path,
    offset: Callable[[], int],
    stop: threading.Event,
    *,
    every_beat: Callable[[], None] | None = None,
    ready: threading.Event | None = None,
) -> Path:
    """Write `beat` (time and log offset) now and every half second until `stop`, for the supervisor.

    With `ready`, the first beat waits until it is set: the part is not alive before.
    """
    beat.parent.mkdir(parents=True, exist_ok=True)

    def pulse() -> None:
        while not stop.wait(0.5):
            if ready is None or ready.is_set():
                beat.write_text(f"{time.time()} {offset()}\n")
            if every_beat is not None:
                every_beat()

    if ready is None:
        beat.write_text(f"{time.time()} {offset()}\n")
    threading.Thread(target=pulse, daemon=True).start()
    return beat


def _host() -> str:
    """This machine's name as a consumer name may spell it."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()) or "host"


def _connect_host(host: str) -> str:
    """Where this machine reaches a server listening on `host` (any-address binds mean loopback)."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


PARTS = {
    "api": run_api,
    "lake": run_lake,
    "triggers": run_triggers,
    "bandits": run_bandits,
    "scheduler": run_scheduler,
}


def main(argv: list[str]) -> None:
    from kawa.config import ConfigError
    from kawa.observe.logs import TEXT_FORMAT
    from kawa.observe.process import setup

    try:
        setup(load_config(), argv[0] if argv else "kawa")
    except ConfigError:  # the part says what is wrong when it loads kawa.yaml itself
        logging.basicConfig(level=logging.INFO, format=TEXT_FORMAT, stream=sys.stdout)
    # api-2, api-3, ...: the further API processes of `kawa serve --workers N`; triggers-2, ... the
    # further trigger workers of `--trigger-workers N`.
    if len(argv) == 1 and argv[0].startswith("api-") and argv[0][4:].isdigit():
        run_api(argv[0])
        return
    if len(argv) == 1 and argv[0].startswith("triggers-") and argv[0][9:].isdigit():
        run_triggers(argv[0])
        return
    if len(argv) != 1 or argv[0] not in PARTS:
        raise SystemExit(f"usage: python -m kawa.serve.worker {'|'.join(PARTS)}|api-N|triggers-N")
    PARTS[argv[0]]()


if __name__ == "__main__":
    main(sys.argv[1:])
