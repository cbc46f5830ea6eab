"""Thread workers run for the length of a ``with`` block, shared by the cluster and fault tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from scheduler.worker import Worker


@contextmanager
def workers_in_threads(workers: Sequence[Worker], join_s: float = 30) -> Iterator[list[Worker]]:
    """Run each worker in a thread of its own for the block; then stop them all and join each
    (for at most ``join_s``), failing if one is still running."""
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    try:
        yield list(workers)
    finally:
        for worker in workers:
            worker.stop()
        for thread in threads:
            thread.join(join_s)
        if any(thread.is_alive() for thread in threads):
            raise AssertionError(f"a worker did not stop within {join_s} s")
