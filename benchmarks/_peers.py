"""The peers kawa is compared with (Feast, MLflow), each in its own virtualenv under benchmarks/.peers/.

They are never kawa dependencies: the benchmark installs a pinned version with pip on first use (a few
minutes; PyPI must be reachable) and runs a small driver script of its own inside that virtualenv.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

PEERS = Path(__file__).parent / ".peers"
HERE = Path(__file__).parent

# Pinned so reruns compare like with like; scikit-learn matches kawa's own so models behave the same.
REQUIREMENTS = {
    "feast": ["feast==0.67.0"],
    "mlflow": ["mlflow==3.17.2", "scikit-learn==1.9.1"],
}


def python(name: str) -> Path:
    """The Python of peer `name`'s virtualenv, created and installed first if it is not there yet."""
    venv = PEERS / name
    exe = venv / "bin" / "python"
    stamp = venv / ".kawa-bench-installed"
    wanted = "\n".join(REQUIREMENTS[name])
    if exe.exists() and stamp.exists() and stamp.read_text() == wanted:
        return exe
    print(f"installing {', '.join(REQUIREMENTS[name])} into {venv} (once) ...", file=sys.stderr)
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(exe), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    done = subprocess.run(
        [str(exe), "-m", "pip", "install", "--quiet", *REQUIREMENTS[name]], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"pip could not install {name} into {venv}:\n{done.stderr[-2000:]}\n"
            "PyPI must be reachable; delete that folder to start over"
        )
    stamp.write_text(wanted)
    return exe


def run_driver(name: str, script: str, args: dict[str, Any], timeout: float = 1200) -> dict[str, Any]:
    """Run benchmarks/<script> with peer `name`'s Python; it reads JSON args on stdin, prints JSON last."""
    exe = python(name)
    done = subprocess.run(
        [str(exe), str(HERE / script)],
        input=json.dumps(args),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{script} failed in the {name} virtualenv:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]
