"""Memory per waiting job: Redis's ``INFO memory`` before and after N waiting jobs; and what
the repeat window costs: a stub per trimmed job, a request record per leased job.

    .venv/bin/python -m benchmarks.memory [--jobs 100000] [--payload-bytes 100] [--runs 3]
        [--claim-batch 100] [--json PATH] [--chart PNG] [--redis-url URL]

Each run flushes the database, reads ``used_memory``, enqueues N jobs whose payload is a
``bytes`` value of P bytes (``enqueue_many``, batches of 1000, default options), and reads
``used_memory`` again. Reported: bytes per waiting job, and bytes per job on top of the payload
(per job minus P). For scale, the same is measured for a plain Redis LIST holding N values of P
bytes (``RPUSH``): the least any Redis queue can use.

The repeat window (``Retention.repeat_window_ms``) keeps, for its length: a **stub** of each
finished job that count trimming took (measured: N jobs completed on a queue whose
``max_completed`` is 0, so each becomes a stub; bytes per stub, the request records removed
first), and a **request record** of each claim (measured: N jobs claimed in batches of
``--claim-batch``, the size of a worker's claims; bytes of the ``requests`` and
``request_exp`` keys per leased job). Multiply by the jobs per second and the window for the
memory a queue holds at that rate. Medians of runs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import redis

from scheduler import JobSpec, Queue, Retention, State

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


def claimed_in_batches(queue: Queue, jobs: int, batch: int) -> list[object]:
    """Claim every waiting job of ``queue`` in claims of ``batch``."""
    leased: list[object] = []
    while len(leased) < jobs:
        leased.extend(queue.claim("memory", count=min(batch, jobs - len(leased))).jobs)
    return leased


def per_stub(client: redis.Redis, jobs: int, payload: bytes) -> float:
    """Bytes per stub: N jobs completed over a count limit of 0, within the window."""
    client.flushdb()
    keep_stubs = Retention(max_completed=0, trim_batch=1000, repeat_window_ms=3_600_000)
    queue = Queue(client, QUEUE, retention=keep_stubs)
    queue.stats(active_limit=0)
    before = used_memory(client)
    for start in range(0, jobs, BATCH):
        n = min(jobs, start + BATCH) - start
        queue.enqueue_many([JobSpec(payload) for _ in range(n)])
        leased = queue.claim("memory", count=n, maintenance=0).jobs
        queue.complete_many([(job, None) for job in leased])
    client.delete(queue.ops.keys.key("requests"), queue.ops.keys.key("request_exp"))
    stubs = queue.stats(active_limit=0).stubs
    if stubs != jobs:
        raise RuntimeError(f"expected {jobs} stubs, found {stubs}")
    return (used_memory(client) - before) / jobs


def per_claimed_job(client: redis.Redis, jobs: int, payload: bytes, batch: int) -> float:
    """Bytes of request records per leased job, claimed in claims of ``batch``."""
    client.flushdb()
    queue = Queue(client, QUEUE)
    for start in range(0, jobs, BATCH):
        queue.enqueue_many([JobSpec(payload) for _ in range(start, min(jobs, start + BATCH))])
    claimed_in_batches(queue, jobs, batch)
    keys = (queue.ops.keys.key("requests"), queue.ops.keys.key("request_exp"))
    return sum(int(client.memory_usage(key, samples=0) or 0) for key in keys) / jobs


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
    stubs: list[float] = []
    requests: list[float] = []
    try:
        for _ in range(args.runs):
            ours.append(per_job_of_queue(client, args.jobs, payload))
            plain.append(per_item_of_list(client, args.jobs, payload))
            stubs.append(per_stub(client, args.jobs, payload))
            requests.append(per_claimed_job(client, args.jobs, payload, args.claim_batch))
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
    figures["stub_bytes"] = _common.figure(
        "stub of a trimmed job, kept for the repeat window", "bytes", stubs
    )
    figures["request_bytes_per_job"] = _common.figure(
        f"claim record per leased job (claims of {args.claim_batch}), kept for the window",
        "bytes",
        requests,
    )
    return report


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse the arguments, run, print the table, write JSON/chart if asked; the report."""
    parser = _common.parser("benchmarks.memory", __doc__)
    parser.add_argument("--jobs", type=int, default=100_000, help="waiting jobs per run")
    parser.add_argument("--payload-bytes", type=int, default=100, help="payload size in bytes")
    parser.add_argument("--claim-batch", type=int, default=100, help="jobs per claim")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.runs < 1 or args.payload_bytes < 0 or args.claim_batch < 1:
        parser.error("need jobs >= 1, runs >= 1, payload-bytes >= 0, claim-batch >= 1")
    with _common.redis_server(args.redis_url) as url:
        report = run(url, bool(args.redis_url), args)
    return _common.finish(report, args, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
