"""``stop()`` is safe in a signal handler: a worker run in the main thread of a process, with
``signal.signal(SIGUSR1, lambda *_: worker.stop())`` and the signal sent at a random moment,
always stops within its bound, run after run (a stop that took a lock the main thread held
would deadlock the process). For both workers."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import redis

from scheduler import Queue
from scheduler.worker import Worker

ROOT = Path(__file__).resolve().parents[2]
RUNS = 20
BOUND_S = 2.0
"""Grace (1 s, which short jobs never use up) plus a margin; an idle stop takes ~20 ms."""


@pytest.mark.parametrize("kind", ["thread", "asyncio"])
def test_a_signal_at_a_random_moment_always_stops_the_worker_in_time(
    kind: str, redis_url: str, r: redis.Redis
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.signal_child", redis_url, kind, str(RUNS), "11"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,  # a deadlock would hang the child: this fails the test instead
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    times = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(times) == RUNS
    print(f"\n{kind} worker, signal to stop over {RUNS} runs: max {max(times) * 1000:.0f} ms")
    assert max(times) < BOUND_S, times


def test_stop_takes_no_lock_and_sends_nothing() -> None:
    """What a signal handler meets: the interrupted thread may hold the worker's lock. A stop
    that took it (or any lock the worker holds) would never return; a stop that called Redis
    could block in a socket. Here the caller holds the lock, and Redis is unreachable."""
    worker = Worker(Queue(redis.Redis(port=1), "q"), lambda job, context: None)
    returned = threading.Event()

    def stop_while_holding_the_lock() -> None:
        with worker._lock:
            worker.stop()
            worker.stop()  # and again: harmless
        returned.set()

    thread = threading.Thread(target=stop_while_holding_the_lock, daemon=True)
    thread.start()
    assert returned.wait(2.0), "stop() blocked"
