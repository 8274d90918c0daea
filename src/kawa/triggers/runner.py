"""One trigger worker process: the partitions it holds, each run by a `TriggerWorker` on its own thread.

With `triggers.workers: n` the log's events are split into n partitions by entity key (`_partition`).
Each partition is held by one process at a time through a lease on the event log, renewed every
quarter of `claim_idle_s`. A process first takes its own partition (`kawa serve` starts n processes,
`triggers`, `triggers-2`, ...), then any partition it saw held whose lease went free (its holder died
or stopped renewing for `claim_idle_s`), and after `START_GRACE_S` any free partition at all (one
whose process never came up). The new holder claims the records the old one left
unacknowledged in the partition's consumer group and goes on from the partition's stored offset,
so nothing is missed and nothing is scored twice. A process holding nothing stands by.

A holder that stalls longer than `claim_idle_s` (a paused VM) loses its partition and stops it, but
may finish the batch it was writing after the new holder started: keep `claim_idle_s` well above
any pause you expect (the default is 10 s).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kawa.stores.eventlog import EventLog
from kawa.triggers._gc import GcPacer
from kawa.triggers._partition import Partition
from kawa.triggers.worker import TriggerWorker

log = logging.getLogger("kawa.triggers")

# How long a process leaves partitions it never saw held to their own processes, which may be starting.
START_GRACE_S = 30.0

# Makes the worker of a partition; run on the partition's thread (recovery may read the log a while).
MakeWorker = Callable[[Partition], TriggerWorker]


@dataclass
class _Held:
    partition: Partition
    stop: threading.Event
    thread: threading.Thread
    worker: TriggerWorker | None = None
    error: BaseException | None = None


class PartitionRunner:
    """Holds partitions of the trigger work for `holder` and runs each until `run`'s `stop` is set."""

    def __init__(
        self,
        event_log: EventLog,
        make: MakeWorker,
        *,
        count: int = 1,
        preferred: int = 0,
        holder: str = "triggers",
        claim_idle_s: float = 10.0,
    ) -> None:
        if count < 1:
            raise ValueError(f"triggers.workers must be at least 1 (got {count})")
        self.log = event_log
        self.make = make
        self.count = count
        self.preferred = preferred % count
        self.holder = holder
        self.claim_idle_s = claim_idle_s
        self.held: dict[int, _Held] = {}
        # Set once this process's own partition has loaded its models, or is held by another process:
        # `kawa serve` says it is ready only then, so no first event waits for a model to load.
        self.ready = threading.Event()
        self._stopping: dict[int, _Held] = {}  # partitions told to stop whose thread has not ended yet

    @property
    def offset(self) -> int:
        """The lowest offset of the partitions held (0 while none has started): for the heartbeat."""
        return min((h.worker.offset for h in self.held.values() if h.worker is not None), default=0)

    def checkpoint(self) -> None:
        """Each held partition's `TriggerWorker.checkpoint`."""
        for held in list(self.held.values()):
            if held.worker is not None:
                held.worker.checkpoint()

    def run(self, stop: threading.Event) -> None:
        """Take, renew and run partitions until `stop`; raises what a partition's worker raised."""
        born = time.monotonic()
        order = [self.preferred, *(i for i in range(self.count) if i != self.preferred)]
        seen: set[int] = set()  # partitions another process was seen holding
        pacer = GcPacer()
        try:
            while True:
                for held in self.held.values():
                    if held.error is not None:
                        raise held.error
                for index, held in list(self._stopping.items()):
                    if not held.thread.is_alive():
                        del self._stopping[index]
                for index in order:
                    name = Partition(index, self.count).group
                    if index in self._stopping:
                        continue
                    if index in self.held:
                        if not self.log.hold(name, self.holder, self.claim_idle_s):
                            log.warning("trigger partition %s was taken over; stopping it here", name)
                            self._stop(index)
                        continue
                    if index != self.preferred:
                        if self.log.holder(name) is not None:
                            seen.add(index)
                            continue
                        if index not in seen and time.monotonic() - born < START_GRACE_S:
                            continue  # its own process may still be starting
                    if self.log.hold(name, self.holder, self.claim_idle_s):
                        self._start(Partition(index, self.count))
                    elif index == self.preferred:
                        self.ready.set()  # another process runs it: this one stands by
                pacer.tick()
                if stop.wait(self.claim_idle_s / 4):
                    return
        finally:
            for index in list(self.held):
                self._stop(index)
            for held in self._stopping.values():
                held.thread.join()

    def _start(self, partition: Partition) -> None:
        held = _Held(partition, threading.Event(), threading.Thread())
        held.thread = threading.Thread(
            target=self._work, args=(held,), name=f"kawa-{partition.group}", daemon=True
        )
        self.held[partition.index] = held
        if self.count > 1:
            log.info("trigger worker %s holds partition %s", self.holder, partition.group)
        held.thread.start()

    def _work(self, held: _Held) -> None:
        try:
            worker = self.make(held.partition)
            worker.warm_up()
            held.worker = worker
            self.ready.set()
            worker.run(held.stop)
            worker.checkpoint()
        except BaseException as exc:
            log.exception("trigger partition %s failed", held.partition.group)
            held.error = exc
        finally:
            self.log.release(held.partition.group, self.holder)

    def _stop(self, index: int) -> None:
        """Tell a partition's thread to stop; it stores where it got to and gives the lease up itself.

        Not waited for here: the leases of the other partitions must go on being renewed meanwhile.
        """
        held = self.held.pop(index)
        held.stop.set()
        self._stopping[index] = held
