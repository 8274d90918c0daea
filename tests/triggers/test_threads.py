"""While a trigger worker runs, OpenMP runtimes have one thread; the process's setting comes back after."""

from __future__ import annotations

import lightgbm  # noqa: F401 - loads an OpenMP runtime, as a LightGBM model does
from threadpoolctl import threadpool_info, threadpool_limits

from kawa.triggers._threads import single_threaded


def _openmp_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "openmp"]


def test_openmp_is_held_to_one_thread_until_the_last_worker_stops() -> None:
    with threadpool_limits(limits=3, user_api="openmp"):  # the process's own setting, whatever the machine
        assert _openmp_threads() and set(_openmp_threads()) == {3}
        with single_threaded():
            assert set(_openmp_threads()) == {1}
            with single_threaded():  # a second partition's worker in the same process
                assert set(_openmp_threads()) == {1}
            assert set(_openmp_threads()) == {1}  # the first one still runs
        assert set(_openmp_threads()) == {3}
