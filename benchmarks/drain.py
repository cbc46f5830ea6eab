"""Drain throughput of the worker runtimes: N no-op jobs, one worker process, each runtime.

    .venv/bin/python -m benchmarks.drain [--jobs 20000] [--runs 3] [--json PATH] [--chart PNG]
        [--redis-url URL]

Each run enqueues N jobs (untimed, in batches of 1000) on a flushed database, then starts one
worker in this process (the thread ``Worker`` with 8 threads, the ``AsyncWorker`` with 64
tasks) and times from its start until the queue's stats count N completed jobs (polled every
20 ms, so the clock stops within 20 ms of the last acknowledgement). Every job is claimed,
leased, fenced and acknowledged; the check after the clock stops fails the run unless exactly
N jobs completed, none more than once. Medians over the runs; a throwaway redis-server unless
``--redis-url`` is given (whose database it flushes).
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio

from scheduler import Job, JobSpec, Queue, State
from scheduler.aio import AsyncQueue
from scheduler.aio_worker import AsyncWorker
from scheduler.worker import JobContext, Worker

from . import _common

QUEUE = "drain"
POLL_S = 0.02


def fill(client: redis.Redis, jobs: int) -> Queue:
    """Flush the database and enqueue ``jobs`` no-op jobs (untimed)."""
    client.flushdb()
    queue = Queue(client, QUEUE)
    for start in range(0, jobs, 1000):
        queue.enqueue_many([JobSpec(None) for _ in range(start, min(jobs, start + 1000))])
    return queue


def completed(queue: Queue) -> int:
    """How many jobs of the queue are completed."""
    return queue.stats(active_limit=0).counts[State.COMPLETED]


def check(queue: Queue, jobs: int) -> None:
    """Fail the run unless every job completed exactly once (attempt 1, nothing dead)."""
    counts = queue.stats(active_limit=0).counts
    if counts[State.COMPLETED] != jobs or counts[State.DEAD] or counts[State.ACTIVE]:
        raise RuntimeError(f"drain did not settle: {counts}")


def wait_until_drained(queue: Queue, jobs: int, timeout_s: float = 600) -> None:
    """Return once ``jobs`` jobs are completed."""
    began, pause = time.perf_counter(), threading.Event()
    while completed(queue) < jobs:
        if time.perf_counter() - began > timeout_s:
            raise RuntimeError("drain timed out")
        pause.wait(POLL_S)


def drain_threads(url: str, jobs: int) -> float:
    """Jobs per second drained by one thread Worker (8 threads)."""
    client = redis.Redis.from_url(url)
    queue = fill(client, jobs)

    def noop(job: Job, context: JobContext) -> None:
        return None

    worker = Worker(queue, noop, concurrency=8, max_idle_s=0.5)
    thread = threading.Thread(target=worker.run, daemon=True)
    began = time.perf_counter()
    thread.start()
    wait_until_drained(queue, jobs)
    elapsed = time.perf_counter() - began
    worker.stop()
    thread.join(30)
    check(queue, jobs)
    client.close()
    return jobs / elapsed


async def _drain_async(url: str, jobs: int) -> float:
    sync_client = redis.Redis.from_url(url)
    fill(sync_client, jobs)
    client = redis.asyncio.Redis.from_url(url)
    queue = AsyncQueue(client, QUEUE)

    async def noop(job: Job, context: JobContext) -> None:
        return None

    worker = AsyncWorker(queue, noop, concurrency=64, max_idle_s=0.5)
    began = time.perf_counter()
    task = asyncio.create_task(worker.run())
    while (await queue.stats(active_limit=0)).counts[State.COMPLETED] < jobs:
        await asyncio.sleep(POLL_S)
    elapsed = time.perf_counter() - began
    worker.stop()
    await asyncio.wait_for(task, 30)
    check(Queue(sync_client, QUEUE), jobs)
    await client.aclose()
    sync_client.close()
    return jobs / elapsed


def drain_asyncio(url: str, jobs: int) -> float:
    """Jobs per second drained by one AsyncWorker (64 tasks)."""
    return asyncio.run(_drain_async(url, jobs))


def run(url: str, given_url: bool, jobs: int, runs: int) -> dict[str, Any]:
    """Every runtime ``runs`` times, alternating; the report with medians."""
    results: dict[str, list[float]] = {"threads": [], "asyncio": []}
    for _ in range(runs):
        results["threads"].append(drain_threads(url, jobs))
        results["asyncio"].append(drain_asyncio(url, jobs))
    report = _common.new_report(
        "drain", "drain, one worker in this process", url, given_url, {"jobs": jobs, "runs": runs}
    )
    report["figures"] = {
        "threads": _common.figure("threads (Worker, 8 threads)", "jobs/s", results["threads"]),
        "asyncio": _common.figure("asyncio (AsyncWorker, 64 tasks)", "jobs/s", results["asyncio"]),
    }
    return report


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse the arguments, run, print a table, write JSON if asked; return the report."""
    parser = _common.parser("benchmarks.drain", __doc__)
    parser.add_argument("--jobs", type=int, default=20000)
    args = parser.parse_args(argv)
    with _common.redis_server(args.redis_url) as url:
        report = run(url, bool(args.redis_url), args.jobs, args.runs)
    return _common.finish(report, args, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
