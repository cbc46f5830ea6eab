"""A record of what the workers ran, and worker threads to run on a cluster, for the tests that
move slots or fail a primary over while workers run."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from scheduler import Job, Queue
from scheduler.sharded import ShardedQueue
from scheduler.worker import JobContext, Worker
from tests.worker_threads import workers_in_threads


class History:
    """Every job id enqueued (acknowledged by Redis) and every run a handler began."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.enqueued: set[str] = set()
        self.runs: Counter[str] = Counter()

    def handler(self, job: Job, context: JobContext) -> None:
        """The job handler: count the run."""
        with self.lock:
            self.runs[job.id] += 1

    def ran(self) -> set[str]:
        """The ids run at least once."""
        with self.lock:
            return set(self.runs)

    def repeated(self) -> dict[str, int]:
        """The ids run more than once, with their run counts."""
        with self.lock:
            return {job_id: n for job_id, n in self.runs.items() if n > 1}

    def unexpected(self) -> set[str]:
        """Ids run that were never enqueued (must be empty)."""
        return self.ran() - self.enqueued


def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``check`` every 20 ms; fail the test at the deadline."""
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    while time.monotonic() < deadline:
        if check():
            return
        pause.wait(0.02)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@contextmanager
def running_workers(
    queues: list[Queue] | list[ShardedQueue], history: History, **options: Any
) -> Iterator[list[Worker]]:
    """One thread ``Worker`` per queue given, running the history's handler; stopped (and
    joined, bounded) on leaving the block."""
    with workers_in_threads([Worker(q, history.handler, **options) for q in queues]) as workers:
        yield workers


class Producer:
    """A thread that enqueues jobs ``<prefix>-<n>`` one by one until stopped (or ``limit``),
    repeating an enqueue after a transient error (same id: safe) until Redis acknowledges it."""

    def __init__(self, queue: Queue, history: History, prefix: str, *, limit: int = 10**9,
                 **options: Any) -> None:  # fmt: skip
        self.queue, self.history, self.prefix, self.limit = queue, history, prefix, limit
        self.options = options
        self.stop = threading.Event()
        self.errors = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from scheduler.connection import TRANSIENT_ERRORS

        n = 0
        while not self.stop.is_set() and n < self.limit:
            job_id = f"{self.prefix}-{n}"
            try:
                self.queue.enqueue(n, id=job_id, **self.options)
            except TRANSIENT_ERRORS:
                self.errors += 1
                self.stop.wait(0.05)
                continue
            with self.history.lock:
                self.history.enqueued.add(job_id)
            n += 1
            if n % 20 == 0:
                self.stop.wait(0.005)  # a steady stream, not a burst

    def __enter__(self) -> Producer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive(), "the producer did not stop"
