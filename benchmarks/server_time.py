"""Redis's own time per job in the hot-path scripts, from ``INFO commandstats``.

    .venv/bin/python -m benchmarks.server_time [--jobs 20000] [--batch 100]
        [--payload-bytes 100] [--runs 3] [--json PATH] [--chart PNG] [--redis-url URL]

Each run flushes the database and resets the command statistics before each phase, then reads
the microseconds Redis spent in ``EVALSHA`` during it, divided by the jobs the phase moved:

* ``enqueue_many`` of N jobs in batches of 1000;
* ``claim`` of N jobs in batches of B;
* ``complete_many`` of those N jobs in batches of B;
* ``enqueue`` of 2,000 jobs one at a time.

This is the server's CPU per job, without the round trip and the client's work: what bounds a
queue's throughput once clients batch. A no-op script is measured alongside (per call) as the
floor of one EVALSHA. Medians of runs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import redis

from scheduler import Claimed, JobSpec, Queue

from . import _common

QUEUE = "server-time"
SINGLE_ENQUEUES = 2000


def evalsha_usec(client: redis.Redis) -> float:
    """Microseconds Redis spent in EVALSHA since the last CONFIG RESETSTAT."""
    stats = client.info("commandstats").get("cmdstat_evalsha", {})
    return float(stats.get("usec", 0))


def phase(client: redis.Redis, jobs: int, work: Callable[[], Any]) -> float:
    """Server microseconds per job spent by ``work`` (which moves ``jobs`` jobs)."""
    client.config_resetstat()
    work()
    return evalsha_usec(client) / jobs


def one_run(client: redis.Redis, jobs: int, batch: int, payload: bytes) -> dict[str, float]:
    """Every phase once on a flushed database."""
    client.flushdb()
    queue = Queue(client, QUEUE)
    claimed: list[Claimed] = []

    def enqueue_many() -> None:
        for start in range(0, jobs, 1000):
            specs = [JobSpec(payload) for _ in range(start, min(jobs, start + 1000))]
            queue.enqueue_many(specs)

    def claim() -> None:
        for _ in range(0, jobs, batch):
            claimed.append(queue.claim("bench-worker", count=batch))

    def complete() -> None:
        for batch_claimed in claimed:
            queue.complete_many([(job, None) for job in batch_claimed.jobs])

    def enqueue_single() -> None:
        for _ in range(SINGLE_ENQUEUES):
            queue.enqueue(payload)

    noop = client.register_script("return 1")
    result = {
        "enqueue_many": phase(client, jobs, enqueue_many),
        "claim": phase(client, jobs, claim),
        "complete_many": phase(client, jobs, complete),
        "enqueue": phase(client, SINGLE_ENQUEUES, enqueue_single),
        "noop": phase(client, SINGLE_ENQUEUES, lambda: [noop() for _ in range(SINGLE_ENQUEUES)]),
    }
    if sum(len(c.jobs) for c in claimed) != jobs:
        raise RuntimeError("the claims did not lease every job")
    return result


LABELS = {
    "noop": "baseline: no-op EVALSHA, per call",
    "enqueue": "enqueue, one at a time, per job",
    "enqueue_many": "enqueue_many (batches of 1000), per job",
    "claim": "claim (batches of B), per job",
    "complete_many": "complete_many (batches of B), per job",
}


def run(url: str, given_url: bool, args: Any) -> dict[str, Any]:
    """Every phase ``runs`` times; the report."""
    settings = {
        "jobs": args.jobs,
        "batch": args.batch,
        "payload_bytes": args.payload_bytes,
        "runs": args.runs,
    }
    report = _common.new_report("server_time", "Redis time per job", url, given_url, settings)
    client = _common.connect(url)
    runs: list[dict[str, float]] = []
    try:
        for _ in range(args.runs):
            runs.append(one_run(client, args.jobs, args.batch, b"x" * args.payload_bytes))
        client.flushdb()
    finally:
        client.close()
    for name, label in LABELS.items():
        report["figures"][name] = _common.figure(label, "us", [r[name] for r in runs])
    return report


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse the arguments, run, print the table, write JSON/chart if asked; the report."""
    parser = _common.parser("benchmarks.server_time", __doc__)
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs per run")
    parser.add_argument("--batch", type=int, default=100, help="jobs per claim and completion")
    parser.add_argument("--payload-bytes", type=int, default=100, help="payload size in bytes")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.runs < 1 or not 1 <= args.batch <= 1000 or args.payload_bytes < 0:
        parser.error("need jobs >= 1, runs >= 1, 1 <= batch <= 1000, payload-bytes >= 0")
    with _common.redis_server(args.redis_url) as url:
        report = run(url, bool(args.redis_url), args)
    return _common.finish(report, args, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
