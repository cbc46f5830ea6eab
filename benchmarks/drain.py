"""Drain throughput of the worker runtimes: N no-op jobs, one worker process, each runtime.

    .venv/bin/python -m benchmarks.drain [--jobs 20000] [--runs 3] [--redis-url URL]

Each run enqueues N jobs (untimed, in batches of 1000) on a flushed database, then starts one
worker in this process (the thread ``Worker`` with 8 threads, the ``AsyncWorker`` with 64
tasks) and times from its start until the queue's stats count N completed jobs (polled every
20 ms, so the clock stops within 20 ms of the last acknowledgement). Every job is claimed,
leased, fenced and acknowledged; the check after the clock stops fails the run unless exactly
N jobs completed, none more than once. Medians over the runs; a throwaway redis-server unless
``--redis-url`` is given (whose database it flushes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis
import redis.asyncio

from scheduler import Job, JobSpec, Queue, State
from scheduler._local_redis import LocalRedis
from scheduler.aio import AsyncQueue
from scheduler.aio_worker import AsyncWorker
from scheduler.worker import JobContext, Worker

from .quick import environment

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


def run(url: str, jobs: int, runs: int) -> dict[str, Any]:
    """Every runtime ``runs`` times, alternating; the report with medians."""
    results: dict[str, list[float]] = {
        "threads (Worker, 8 threads)": [],
        "asyncio (AsyncWorker, 64 tasks)": [],
    }
    for _ in range(runs):
        results["threads (Worker, 8 threads)"].append(drain_threads(url, jobs))
        results["asyncio (AsyncWorker, 64 tasks)"].append(drain_asyncio(url, jobs))
    client = redis.Redis.from_url(url)
    report = environment(client)
    client.close()
    report["settings"] = {"jobs": jobs, "runs": runs}
    report["figures"] = {
        name: {"median_jobs_per_s": statistics.median(rates), "runs": rates}
        for name, rates in results.items()
    }
    return report


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse the arguments, run, print a table, write JSON if asked; return the report."""
    parser = argparse.ArgumentParser(prog="benchmarks.drain", description=__doc__)
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args(argv)
    if args.redis_url:
        report = run(args.redis_url, args.jobs, args.runs)
    else:
        with LocalRedis() as server:
            report = run(server.url, args.jobs, args.runs)
    print(f"drain of {args.jobs} no-op jobs, one worker process, medians of {args.runs} runs")
    print(f"Redis {report['redis_version']}, commit {report['commit'][:12]}, {report['date']}")
    for name, figure in report["figures"].items():
        runs = " ".join(f"{rate:,.0f}" for rate in figure["runs"])
        print(f"  {name:34s} {figure['median_jobs_per_s']:>9,.0f} jobs/s   ({runs})")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
