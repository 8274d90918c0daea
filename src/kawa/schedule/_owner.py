"""Who holds a claimed run or the scheduler lease, and whether that process still lives.

An owner is `host:pid:start`, the start being the process's start time from /proc (Linux), so a
recycled pid does not pass for the process that died.
"""

from __future__ import annotations

import os
import socket
from functools import cache


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            stat = f.read()
    except OSError:
        return "0"
    # Field 22 (starttime); the command name in field 2 may hold spaces, so count after its ')'.
    return stat.rsplit(")", 1)[1].split()[19]


@cache
def me() -> str:
    """This process as an owner."""
    return owner_of(os.getpid())


def owner_of(pid: int) -> str:
    """The process `pid` on this host as an owner."""
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def alive(owner: str | None) -> bool:
    """Whether `owner` still runs; owners on other hosts count as alive (this host cannot tell)."""
    if not owner:
        return False
    parts = owner.rsplit(":", 2)
    if len(parts) != 3:
        return False
    host, pid_text, start = parts
    if host != socket.gethostname():
        return True
    try:
        pid = int(pid_text)
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return start == "0" or _start_time(pid) == start
