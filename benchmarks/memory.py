"""Memory per waiting job: Redis's ``INFO memory`` before and after N waiting jobs.

    .venv/bin/python -m benchmarks.memory [--jobs 100000] [--payload-bytes 100] [--runs 3]
        [--json PATH] [--chart PNG] [--redis-url URL]

Each run flushes the database, reads ``used_memory``, enqueues N jobs whose payload is a
``bytes`` value of P bytes (``enqueue_many``, batches of 1000, default options), and reads
``used_memory`` again. Reported: bytes per waiting job, and bytes per job on top of the payload
(per job minus P). For scale, the same is measured for a plain Redis LIST holding N values of P
bytes (``RPUSH``): the least any Redis queue can use. Medians of runs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import redis

from scheduler import JobSpec, Queue, State

from . import _common

QUEUE = "memory"
LIST_KEY = "memory:{list}"
BATCH = 1000


def used_memory(client: redis.Redis) -> int:
    """``used_memory`` from ``INFO memory``, in bytes."""
    return int(client.info("memory")["used_memory"])


def per_job_of_queue(client: redis.Redis, jobs: int, payload: bytes) -> float:
    """Bytes per waiting job of this project's queue."""
    client.flushdb()
    queue = Queue(client, QUEUE)
    queue.stats(active_limit=0)  # scripts loaded before the first reading
    before = used_memory(client)
    for start in range(0, jobs, BATCH):
        queue.enqueue_many([JobSpec(payload) for _ in range(start, min(jobs, start + BATCH))])
    after = used_memory(client)
    waiting = queue.stats(active_limit=0).counts.get(State.WAITING, 0)
    if waiting != jobs:
        raise RuntimeError(f"expected {jobs} waiting jobs, found {waiting}")
    return (after - before) / jobs


def per_item_of_list(client: redis.Redis, jobs: int, payload: bytes) -> float:
    """Bytes per value of a plain Redis LIST."""
    client.flushdb()
    before = used_memory(client)
    for start in range(0, jobs, BATCH):
        client.rpush(LIST_KEY, *([payload] * (min(jobs, start + BATCH) - start)))
    after = used_memory(client)
    return (after - before) / jobs


def run(url: str, given_url: bool, args: Any) -> dict[str, Any]:
    """Both measurements ``runs`` times, alternating; the report."""
    settings = {"jobs": args.jobs, "payload_bytes": args.payload_bytes, "runs": args.runs}
    report = _common.new_report("memory", "memory per waiting job", url, given_url, settings)
    payload = b"x" * args.payload_bytes
    client = _common.connect(url)
    ours: list[float] = []
    plain: list[float] = []
    try:
        for _ in range(args.runs):
            ours.append(per_job_of_queue(client, args.jobs, payload))
            plain.append(per_item_of_list(client, args.jobs, payload))
        client.flushdb()
    finally:
        client.close()
    p = args.payload_bytes
    figures = report["figures"]
    figures["job_bytes"] = _common.figure("waiting job, total", "bytes", ours)
    figures["job_overhead_bytes"] = _common.figure(
        f"waiting job, on top of the {p} B payload", "bytes", [v - p for v in ours]
    )
    figures["list_bytes"] = _common.figure("baseline: plain LIST item, total", "bytes", plain)
    figures["list_overhead_bytes"] = _common.figure(
        f"baseline: plain LIST item, on top of the {p} B value", "bytes", [v - p for v in plain]
    )
    return report


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse the arguments, run, print the table, write JSON/chart if asked; the report."""
    parser = _common.parser("benchmarks.memory", __doc__)
    parser.add_argument("--jobs", type=int, default=100_000, help="waiting jobs per run")
    parser.add_argument("--payload-bytes", type=int, default=100, help="payload size in bytes")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.runs < 1 or args.payload_bytes < 0:
        parser.error("need jobs >= 1, runs >= 1, payload-bytes >= 0")
    with _common.redis_server(args.redis_url) as url:
        report = run(url, bool(args.redis_url), args)
    return _common.finish(report, args, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
