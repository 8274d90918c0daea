"""A part of `kawa serve` stops on SIGTERM even when a second SIGTERM lands inside the first one's handler."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# The second signal is delivered while the first handler's `stop.set()` holds the event's lock, as a
# SIGTERM to the whole process group (plus the supervisor's own) can land. A handler that calls
# `set()` again there waits forever; the child would then hang until the timeout below.
_CHILD = textwrap.dedent(
    """
    import os, signal, threading, time
    from kawa.serve._signals import set_on_stop_signals

    stop = set_on_stop_signals(threading.Event())
    notify_all = stop._cond.notify_all

    def notify_all_then_signal():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # a handler for it would run here, with the lock held
        notify_all()

    stop._cond.notify_all = notify_all_then_signal
    os.kill(os.getpid(), signal.SIGTERM)
    stop.wait(5)
    print("stopped", stop.is_set(), signal.getsignal(signal.SIGTERM) is signal.SIG_IGN)
    """
)


def test_a_second_sigterm_inside_the_first_handler_neither_deadlocks_nor_kills() -> None:
    done = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["stopped", "True", "True"]
