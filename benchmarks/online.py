"""Online prediction latency over loopback HTTP at a fixed request rate, next to `mlflow models serve`.

    python -m benchmarks.online              # 3 runs at 300 req/s (about 10 minutes)
    python -m benchmarks.online --quick      # 1 run of 5 s per endpoint

Set-up: a real `kawa serve` in a fresh project; two bundles trained on RFM-style rows
(benchmarks/_peers_data.py): `logistic` (scikit-learn LogisticRegression) and `lightgbm` (200 trees, as
the loyalty template); `logistic` scores 100 k users with `batch_predict`, published to the prediction
store. The peer: the scikit-learn pipeline with the same preprocessing (median fill + missing flags +
scaling, one-hot channel, LogisticRegression), fitted on the same rows in benchmarks/.peers/mlflow and
served by `mlflow models serve --env-manager local` (one uvicorn worker, like kawa's API).

Each run goes through these phases, each after a 2 s warm-up, from an open-loop client
(benchmarks/_peers_load.py) over 8 keep-alive connections:
1. baseline: single-row bodies to a trivial uvicorn app (benchmarks/_sink.py), `--rate` for 10 s:
   what the client and HTTP alone cost here;
2. kawa `GET /v1/predictions/logistic/{user}` (random users), `--rate` for `--duration` s;
3. kawa `POST /v1/models/logistic/predict` with one human-readable row, and the same for `lightgbm`;
4. MLflow `POST /invocations` with the same row as {"dataframe_records": [row]} at `--rate` for 3 s:
   MLflow cannot keep up with 300 req/s here, so this shows its throughput and queueing only;
5. kawa `POST .../logistic/predict` and MLflow at `--peer-rate` (20 req/s, which MLflow sustains) for
   `--peer-duration` s: latency against latency, the ratio reported.
Reports p50/p90/p99/max per phase, each run and the median, and the MLflow / kawa ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from benchmarks._client import request_head
from benchmarks._peers import python, run_driver
from benchmarks._peers_data import CATEGORICAL, FEATURES, NUMERIC, feature_table, write_parquet
from benchmarks._peers_kawa import PROJECT, RESULTS, machine, median, read_key, save, table
from benchmarks._peers_load import Paced, paced
from benchmarks._server import Kawa, cpu_seconds, free_port, start_kawa, start_sink
from kawa.config import load_config
from kawa.models import Bundle, Registry
from kawa.runtime import Runtime
from kawa.serving.batch import batch_predict
from kawa.serving.store import PredictionStore
from kawa.warehouse.load import write_table

HOST = "127.0.0.1"
TARGET_P99_MS = 2.0
TARGET_RATIO = 10.0
# (phase, endpoint, light: at --peer-rate instead of --rate, longest seconds or None for --duration)
PHASES = [
    ("baseline", "baseline", False, 10.0),
    ("kawa_get", "kawa_get", False, None),
    ("kawa_post_logistic", "kawa_post_logistic", False, None),
    ("kawa_post_lightgbm", "kawa_post_lightgbm", False, None),
    # MLflow cannot keep up with --rate here: a few seconds show its throughput and queueing.
    ("mlflow_post", "mlflow_post", False, 3.0),
    ("kawa_post_logistic_light", "kawa_post_logistic", True, None),
    ("mlflow_post_light", "mlflow_post", True, None),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.online", description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=300.0, help="requests per second (300)")
    p.add_argument("--duration", type=float, help="seconds per endpoint per run (30; 5 with --quick)")
    p.add_argument("--peer-rate", type=float, default=20.0, help="requests/s that MLflow sustains (20)")
    p.add_argument("--peer-duration", type=float, help="seconds at --peer-rate (15; 5 with --quick)")
    p.add_argument("--runs", type=int, default=3, help="runs; medians are reported (3)")
    p.add_argument("--users", type=int, default=100_000, help="users scored and published (100,000)")
    p.add_argument("--connections", type=int, default=8, help="keep-alive connections per endpoint (8)")
    p.add_argument("--no-mlflow", action="store_true", help="skip the MLflow peer")
    p.add_argument("--quick", action="store_true", help="1 run (unless --runs), 5 s per endpoint")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON results")
    given = p.parse_args(argv)
    args = p.parse_args(argv, argparse.Namespace(runs=1) if given.quick else None)
    # --quick shortens what is not given, so `--quick --duration 10` runs 10 s per endpoint.
    if args.duration is None:
        args.duration = 5.0 if args.quick else 30.0
    if args.peer_duration is None:
        args.peer_duration = 5.0 if args.quick else 15.0
    return args


def tree_cpu(pid: int) -> float:
    """CPU seconds used by `pid` and every process below it."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    family, grew = {pid}, True
    while grew:
        more = {p for p, pp in parents.items() if pp in family} - family
        family |= more
        grew = bool(more)
    return sum(cpu_seconds(p) for p in family)


def _wait_port(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before it listened")
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listened on port {port} within {timeout} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Setup:
    """Everything the runs need: servers, ports, keys, request bodies and the processes to watch."""

    def __init__(self, args: argparse.Namespace, folder: Path) -> None:
        self.args = args
        self.folder = folder
        self.facts: dict[str, Any] = {}
        data = feature_table(args.users, seed=11)
        self.train = data.slice(0, min(50_000, args.users))
        rows = data.slice(0, 2000).select(FEATURES).to_pylist()
        self.rows = [msgspec.json.encode(r) for r in rows]
        self.mlflow_rows = [msgspec.json.encode({"dataframe_records": [r]}) for r in rows]
        self.users = data.column("user_id").to_pylist()
        self.kawa: Kawa | None = None
        self.sink: subprocess.Popen[bytes] | None = None
        self.mlflow: subprocess.Popen[bytes] | None = None
        try:
            self.kawa = start_kawa(folder, project=PROJECT)
            self.key = read_key(folder)
            self._publish(data)
            self.sink, self.sink_port = start_sink()
            if not args.no_mlflow:
                self._start_mlflow(rows)
        except BaseException:
            self.close()  # no server may outlive a failed set-up
            raise

    def _publish(self, data: pa.Table) -> None:
        from lightgbm import LGBMClassifier
        from sklearn.linear_model import LogisticRegression

        runtime = Runtime(load_config(self.folder / "kawa.yaml", env={}))
        try:
            warehouse, registry = runtime.warehouse(PROJECT), Registry.from_runtime(runtime)
            train = self.train.select([*FEATURES, "label"])
            lgbm = LGBMClassifier(n_estimators=200, num_leaves=15, learning_rate=0.05, verbose=-1)
            self.bundles = {
                "logistic": Bundle.fit(train, label="label", estimator=LogisticRegression(max_iter=500)),
                "lightgbm": Bundle.fit(train, label="label", estimator=lgbm),
            }
            for name, bundle in self.bundles.items():
                registry.promote(PROJECT, name, registry.register(PROJECT, name, bundle), "production")
            write_table(warehouse, "bench_features", data)
            result = batch_predict(
                warehouse, registry, "logistic", "SELECT * FROM bench_features", entity="user_id",
                run_date=date(2026, 11, 23), store=PredictionStore(runtime.online),
            )  # fmt: skip
            self.facts["published"] = result.published
        finally:
            runtime.close()

    def _start_mlflow(self, rows: list[dict[str, Any]]) -> None:
        model_dir = self.folder / "mlflow-model"
        answer = run_driver(
            "mlflow",
            "_peers_mlflow.py",
            {
                "train": str(write_parquet(self.train, self.folder / "train.parquet")),
                "sample": str(
                    write_parquet(pa.Table.from_pylist(rows[:200]), self.folder / "sample.parquet")
                ),
                "model_dir": str(model_dir),
                "numeric": NUMERIC,
                "categorical": CATEGORICAL,
            },
        )
        ours = np.asarray(self.bundles["logistic"].predict(rows[:200]))
        theirs = np.asarray(answer["sample_scores"])
        self.facts["mlflow_version"] = answer["mlflow"]
        # Two fits of the same model on the same rows: equal up to the solver's tolerance.
        self.facts["max_abs_diff_kawa_vs_mlflow_200_rows"] = float(np.max(np.abs(ours - theirs)))
        self.mlflow_port = free_port()
        mlflow = python("mlflow").parent / "mlflow"
        log = self.folder / "mlflow-serve.log"
        self.mlflow = subprocess.Popen(
            [str(mlflow), "models", "serve", "-m", str(model_dir), "--env-manager", "local",
             "-h", HOST, "-p", str(self.mlflow_port), "-w", "1"],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=self.folder,
            # As if the virtualenv were activated: MLflow starts `uvicorn` from PATH.
            env={**os.environ, "PATH": f"{mlflow.parent}{os.pathsep}{os.environ.get('PATH', '')}"},
        )  # fmt: skip
        try:
            _wait_port(self.mlflow_port, self.mlflow, timeout=120)
        except RuntimeError as exc:
            raise RuntimeError(f"mlflow models serve: {exc}; its log:\n{log.read_text()[-3000:]}") from None

    def close(self) -> None:
        for process in (self.mlflow, self.sink):
            if process is not None:
                _stop(process)
        if self.kawa is not None:
            self.kawa.stop()

    # -- requests --------------------------------------------------------------------------------

    def endpoint(self, name: str) -> tuple[int, int, Callable[[int], list[bytes]]]:
        """(port, pid to watch, i -> request pieces) for an endpoint of PHASES."""
        assert self.kawa is not None and self.sink is not None
        auth = {"Authorization": f"Bearer {self.key}"}
        json_head = {"Content-Type": "application/json"}
        rng = np.random.default_rng(5)
        if name == "kawa_get":
            picks = rng.integers(0, len(self.users), 100_000)
            heads = [
                request_head("GET", f"/v1/predictions/logistic/{self.users[j]}", 0, auth)
                for j in picks[:20_000]
            ]
            return self.kawa.port, self.kawa.pids["api"], lambda i: [heads[i % len(heads)]]
        if name.startswith("kawa_post"):
            path = f"/v1/models/{name.rsplit('_', 1)[1]}/predict"
            return self.kawa.port, self.kawa.pids["api"], _posts(path, self.rows, auth | json_head)
        if name == "mlflow_post":
            assert self.mlflow is not None
            return self.mlflow_port, self.mlflow.pid, _posts("/invocations", self.mlflow_rows, json_head)
        if name == "baseline":
            return self.sink_port, self.sink.pid, _posts("/v1/models/logistic/predict", self.rows, json_head)
        raise ValueError(name)


def _posts(path: str, bodies: list[bytes], headers: dict[str, str]) -> Callable[[int], list[bytes]]:
    prepared = [[request_head("POST", path, len(b), headers), b] for b in bodies]
    return lambda i: prepared[i % len(prepared)]


def _check(name: str, res: Paced) -> None:
    """Fail loudly if an endpoint did not answer what it should (a fast error is not a fast prediction)."""
    if res.summary()["non_2xx"] or not res.bodies:
        raise RuntimeError(f"{name}: statuses {dict(res.statuses)}; first answer {res.bodies[:1]!r}")
    answer = msgspec.json.decode(res.bodies[0])
    ok = {
        "kawa_get": lambda a: 0.0 <= a["score"] <= 1.0,
        "kawa_post_logistic": lambda a: 0.0 <= a["prediction"] <= 1.0,
        "kawa_post_lightgbm": lambda a: 0.0 <= a["prediction"] <= 1.0,
        "mlflow_post": lambda a: 0.0 <= a["predictions"][0][1] <= 1.0,
        "baseline": lambda a: True,
    }[name]
    if not ok(answer):
        raise RuntimeError(f"{name}: unexpected answer {answer!r}")


async def one_run(setup: Setup, run: int) -> dict[str, Any]:
    args = setup.args
    out: dict[str, Any] = {"run": run}
    for name, endpoint, light, cap in PHASES:
        if endpoint == "mlflow_post" and setup.mlflow is None:
            continue
        port, pid, request = setup.endpoint(endpoint)
        rate = args.peer_rate if light else args.rate
        seconds = args.peer_duration if light else min(args.duration, cap or args.duration)
        await paced(HOST, port, request, rate=rate, seconds=2.0, connections=args.connections)
        before = tree_cpu(pid)
        res = await paced(HOST, port, request, rate=rate, seconds=seconds, connections=args.connections)
        server_cpu = tree_cpu(pid) - before
        _check(endpoint, res)
        out[name] = res.summary() | {
            "server_cpu_us_per_request": round(server_cpu / max(len(res.latencies_ms), 1) * 1e6, 1)
        }
        s = out[name]
        print(
            f"run {run} {name}: p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, {s['achieved_rps']} req/s",
            file=sys.stderr,
        )
    return out


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    med: dict[str, Any] = {}
    for name, *_ in PHASES:
        have = [r[name] for r in runs if name in r]
        if have:
            med[name] = {k: median([h[k] for h in have]) for k in have[0]}
    if "mlflow_post_light" in med:
        # At a rate both sustain: latency against latency. At --rate MLflow queues, so compare throughput.
        kawa, peer = med["kawa_post_logistic_light"], med["mlflow_post_light"]
        med["ratio_mlflow_vs_kawa_at_peer_rate"] = {
            q: round(peer[f"{q}_ms"] / kawa[f"{q}_ms"], 1) for q in ("p50", "p99")
        }
        med["ratio_mlflow_vs_kawa_server_cpu_per_request"] = round(
            peer["server_cpu_us_per_request"] / kawa["server_cpu_us_per_request"], 1
        )
    return med


def targets(med: dict[str, Any]) -> dict[str, bool]:
    met = {
        "get_p99_under_2ms": med["kawa_get"]["p99_ms"] < TARGET_P99_MS,
        "post_logistic_p99_under_2ms": med["kawa_post_logistic"]["p99_ms"] < TARGET_P99_MS,
        "post_lightgbm_p99_under_2ms": med["kawa_post_lightgbm"]["p99_ms"] < TARGET_P99_MS,
    }
    if "ratio_mlflow_vs_kawa_at_peer_rate" in med:
        met["mlflow_10x_slower_p50"] = med["ratio_mlflow_vs_kawa_at_peer_rate"]["p50"] >= TARGET_RATIO
        met["mlflow_10x_slower_p99"] = med["ratio_mlflow_vs_kawa_at_peer_rate"]["p99"] >= TARGET_RATIO
    return met


def render(runs: list[dict[str, Any]], med: dict[str, Any]) -> str:
    rows: list[tuple[str, list[Any]]] = []
    for name, *_ in PHASES:
        if name not in med:
            continue
        for q in ("p50_ms", "p99_ms", "max_ms", "achieved_rps", "server_cpu_us_per_request"):
            rows.append((f"{name} {q}", [r[name][q] for r in runs] + [med[name][q]]))
    ratio = med.get("ratio_mlflow_vs_kawa_at_peer_rate")
    if ratio:
        for q in ("p50", "p99"):
            rows.append((f"mlflow / kawa logistic {q} at peer rate", [None] * len(runs) + [ratio[q]]))
        cpu = med["ratio_mlflow_vs_kawa_server_cpu_per_request"]
        rows.append(("mlflow / kawa server CPU per request", [None] * len(runs) + [cpu]))
    return table(rows, [f"run {r['run']}" for r in runs] + ["median"])


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="kawa-ml-online-"))
    setup = None
    try:
        made = time.perf_counter()
        setup = Setup(args, folder)
        print(f"set up kawa and the peer in {time.perf_counter() - made:.0f} s", file=sys.stderr)
        runs = [await one_run(setup, run) for run in range(1, args.runs + 1)]
        return {"facts": setup.facts, "runs": runs}
    finally:
        if setup is not None:
            setup.close()
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.time()
    report: dict[str, Any] = {
        "benchmark": "online",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "command": "python -m benchmarks.online " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "params": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "client": "asyncio (uvloop) raw HTTP/1.1 keep-alive, open loop at a fixed rate",
    }
    try:
        import uvloop
    except ImportError:
        report |= asyncio.run(main_async(args))
    else:
        report |= uvloop.run(main_async(args))
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["median"] = summarise(report["runs"])
    report["targets_met"] = targets(report["median"])
    report["wall_s"] = round(time.time() - started, 1)
    print(render(report["runs"], report["median"]))
    print(f"\nfacts: {report['facts']}\ntargets: {report['targets_met']}")
    print(f"wrote {save('online', report, args.out)} ({report['wall_s']} s)")


if __name__ == "__main__":
    main()
