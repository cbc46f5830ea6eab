"""A process that runs a worker in its main thread, stopped by a signal handler, many times:
``python -m tests.integration.signal_child URL KIND RUNS SEED``.

Each run enqueues a random number of short jobs, installs ``signal.signal(SIGUSR1, lambda *_:
worker.stop())``, has a timer thread send SIGUSR1 to this process at a random moment, and runs
the worker (``run()`` in the main thread, or ``asyncio.run`` of it) until it returns. The
handler may land anywhere: while the main thread holds the worker's lock, blocks in a claim or
in the idle ``BLPOP``. It prints one line of JSON: the seconds from each signal to the end of
``run()``. A deadlock shows as a process that never ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
import threading
import time
from typing import Any

import redis
import redis.asyncio

from scheduler import Job, JobSpec, Queue
from scheduler.aio import AsyncQueue
from scheduler.aio_worker import AsyncWorker
from scheduler.worker import JobContext, Worker

OPTIONS: dict[str, Any] = {"concurrency": 4, "grace_s": 1.0, "max_idle_s": 30}


def quick(job: Job, context: JobContext) -> Any:
    return job.payload


async def quick_async(job: Job, context: JobContext) -> Any:
    return job.payload


class Signaller:
    """Sends SIGUSR1 to this process after ``delay_s`` and notes when."""

    def __init__(self, delay_s: float) -> None:
        self.sent_at = 0.0
        self._timer = threading.Timer(delay_s, self._send)

    def _send(self) -> None:
        self.sent_at = time.monotonic()
        os.kill(os.getpid(), signal.SIGUSR1)

    def start(self) -> None:
        self._timer.start()


def one_thread_run(url: str, name: str, jobs: int, delay_s: float) -> float:
    client = redis.Redis.from_url(url)
    queue = Queue(client, name)
    if jobs:
        queue.enqueue_many([JobSpec(n) for n in range(jobs)])
    worker = Worker(queue, quick, **OPTIONS)
    signal.signal(signal.SIGUSR1, lambda *_: worker.stop())
    signaller = Signaller(delay_s)
    signaller.start()
    worker.run()
    took = time.monotonic() - signaller.sent_at
    client.close()
    return took


def one_async_run(url: str, name: str, jobs: int, delay_s: float) -> float:
    async def main() -> float:
        client = redis.asyncio.Redis.from_url(url)
        queue = AsyncQueue(client, name)
        if jobs:
            await queue.enqueue_many([JobSpec(n) for n in range(jobs)])
        worker = AsyncWorker(queue, quick_async, **OPTIONS)
        signal.signal(signal.SIGUSR1, lambda *_: worker.stop())
        signaller = Signaller(delay_s)
        signaller.start()
        await worker.run()
        took = time.monotonic() - signaller.sent_at
        await client.aclose()
        return took

    return asyncio.run(main())


def main() -> None:
    url, kind, runs, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    one_run = one_thread_run if kind == "thread" else one_async_run
    times = []
    for n in range(runs):
        jobs = rng.choice([0, rng.randint(1, 400)])
        times.append(one_run(url, f"signals-{kind}-{n}", jobs, rng.uniform(0.0, 0.3)))
    print(json.dumps(times), flush=True)


if __name__ == "__main__":
    main()
