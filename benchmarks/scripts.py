"""Per-script latency: every Lua script, called one at a time through ``scheduler.Queue``, beside
plain-Redis baselines measured in the same run, on the same server and connection.

    .venv/bin/python -m benchmarks.scripts [--calls 2000] [--runs 3] [--payload-bytes 100]
        [--json PATH] [--chart PNG] [--redis-url URL]

Baselines: ``PING``; ``EVALSHA`` of a no-op script (``return 1``, one key) through redis-py's
``Script``, as ``Queue`` sends its scripts; ``LPUSH`` of a P-byte value; ``RPOP``.

Each script is timed on a state made for it beforehand, untimed, on a flushed database (N calls,
one job each): ``enqueue`` (a P-byte payload); ``claim`` (count 1, N jobs waiting); ``heartbeat``,
``complete``, ``fail`` (retried later, the usual path) and ``release`` (N jobs leased);
``cancel`` (N waiting); ``requeue`` (N dead); ``purge`` and ``inspect`` (N completed); ``stats``
and ``reap`` (N waiting, nothing due: the periodic call with nothing to do).

One warm-up pass, then R runs; in each run every measurement once, baselines and scripts
interleaved. p50/p99 (nearest rank) per run, then the median of runs; the ratio is a script's
p50 over the no-op EVALSHA p50 of the same run.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.commands.core import Script

from scheduler import Job, JobOptions, JobSpec, Queue, State

from . import _common

QUEUE = "scripts"
NOOP_SCRIPT = "return 1"
NOOP_KEY = "scripts:{noop}"
LIST_KEY = "scripts:{list}"
WARMUP_CALLS = 200

Calls = list[Callable[[], Any]]


@dataclass
class Bench:
    """The client, the queue, the no-op script and the payload of a run."""

    client: redis.Redis
    queue: Queue
    noop: Script
    payload: bytes


def waiting_ids(bench: Bench, n: int, options: JobOptions | None = None) -> list[str]:
    """Enqueue ``n`` jobs (untimed); their ids."""
    ids: list[str] = []
    for part in _common.chunks(range(n), 1000):
        specs = [JobSpec(bench.payload, options=options) for _ in part]
        ids.extend(item.id for item in bench.queue.enqueue_many(specs))
    return ids


def leased(bench: Bench, n: int, options: JobOptions | None = None) -> list[Job]:
    """Enqueue and lease ``n`` jobs (untimed)."""
    waiting_ids(bench, n, options)
    jobs: list[Job] = []
    while len(jobs) < n:
        jobs.extend(bench.queue.claim("bench", count=min(1000, n - len(jobs))).jobs)
    return jobs


def completed_ids(bench: Bench, n: int) -> list[str]:
    """``n`` completed jobs (untimed); their ids."""
    jobs = leased(bench, n)
    for part in _common.chunks(jobs, 1000):
        bench.queue.complete_many([(job, None) for job in part])
    return [job.id for job in jobs]


def dead_ids(bench: Bench, n: int) -> list[str]:
    """``n`` dead jobs (one attempt, failed; untimed); their ids."""
    jobs = leased(bench, n, JobOptions(max_attempts=1))
    for job in jobs:
        bench.queue.fail(job, "boom")
    return [job.id for job in jobs]


def prepare(name: str, bench: Bench, n: int) -> Calls:
    """The ``n`` calls of measurement ``name``, their state made (untimed)."""
    q, c = bench.queue, bench.client
    match name:
        case "ping":
            return [c.ping] * n
        case "noop_evalsha":
            return [lambda: bench.noop(keys=[NOOP_KEY])] * n
        case "lpush":
            return [lambda: c.lpush(LIST_KEY, bench.payload)] * n
        case "rpop":
            c.rpush(LIST_KEY, *([bench.payload] * n))
            return [lambda: c.rpop(LIST_KEY)] * n
        case "enqueue":
            return [lambda: q.enqueue(bench.payload)] * n
        case "claim":
            waiting_ids(bench, n)
            return [lambda: q.claim("bench", count=1)] * n
        case "stats" | "reap":
            waiting_ids(bench, n)
            return [q.stats if name == "stats" else q.reap] * n
    return prepare_per_job(name, bench, n)


def prepare_per_job(name: str, bench: Bench, n: int) -> Calls:
    """The calls of the scripts that act on one given job each."""
    q = bench.queue
    match name:
        case "heartbeat" | "complete" | "fail" | "release":
            act: Callable[[Job], Any] = {
                "heartbeat": lambda job: q.heartbeat([job]),
                "complete": q.complete,
                "fail": lambda job: q.fail(job, "boom"),
                "release": lambda job: q.release([job]),
            }[name]
            return [lambda job=job: act(job) for job in leased(bench, n)]
        case "cancel":
            return [lambda i=i: q.cancel(i) for i in waiting_ids(bench, n)]
        case "requeue":
            return [lambda i=i: q.requeue([i]) for i in dead_ids(bench, n)]
        case "purge":
            return [lambda i=i: q.purge(State.COMPLETED, [i]) for i in completed_ids(bench, n)]
        case "inspect":
            return [lambda i=i: q.inspect(i) for i in completed_ids(bench, n)]
    raise ValueError(f"unknown measurement {name}")


BASELINES = {
    "ping": "baseline: PING",
    "noop_evalsha": "baseline: no-op EVALSHA",
    "lpush": "baseline: LPUSH (P bytes)",
    "rpop": "baseline: RPOP",
}
SCRIPTS = (
    "enqueue",
    "claim",
    "heartbeat",
    "complete",
    "fail",
    "release",
    "cancel",
    "requeue",
    "purge",
    "inspect",
    "stats",
    "reap",
)
MEASUREMENTS = (*BASELINES, *SCRIPTS)


def measure(name: str, bench: Bench, n: int) -> list[float]:
    """Per-call latencies (seconds) of measurement ``name`` on a flushed database."""
    bench.client.flushdb()
    return _common.time_each(prepare(name, bench, n))


def run(url: str, given_url: bool, args: Any) -> dict[str, Any]:
    """Warm up, then every measurement once per run; the report."""
    settings = {"calls": args.calls, "runs": args.runs, "payload_bytes": args.payload_bytes}
    report = _common.new_report("scripts", "per-script latency", url, given_url, settings)
    client = _common.connect(url)
    bench = Bench(
        client, Queue(client, QUEUE), client.register_script(NOOP_SCRIPT), b"x" * args.payload_bytes
    )
    p50: dict[str, list[float]] = {name: [] for name in MEASUREMENTS}
    p99: dict[str, list[float]] = {name: [] for name in MEASUREMENTS}
    try:
        for name in MEASUREMENTS:
            measure(name, bench, min(args.calls, WARMUP_CALLS))
        for _ in range(args.runs):
            for name in MEASUREMENTS:
                latencies = measure(name, bench, args.calls)
                p50[name].append(_common.percentile(latencies, 50) * 1000)
                p99[name].append(_common.percentile(latencies, 99) * 1000)
        client.flushdb()
    finally:
        client.close()
    figures = report["figures"]
    for name in MEASUREMENTS:
        label = BASELINES.get(name, f"script: {name}").replace("P bytes", f"{args.payload_bytes} B")
        figures[f"{name}_p50_ms"] = _common.figure(f"{label}, p50", "ms", p50[name])
        figures[f"{name}_p99_ms"] = _common.figure(f"{label}, p99", "ms", p99[name])
    for name in SCRIPTS:
        ratios = [ours / base for ours, base in zip(p50[name], p50["noop_evalsha"], strict=True)]
        figures[f"{name}_vs_noop"] = _common.figure(
            f"ratio: {name} p50 / no-op EVALSHA p50", "ratio", ratios
        )
    return report


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse the arguments, run, print the table, write JSON/chart if asked; the report."""
    parser = _common.parser("benchmarks.scripts", __doc__)
    parser.add_argument("--calls", type=int, default=2000, help="calls per measurement")
    parser.add_argument("--payload-bytes", type=int, default=100, help="payload size in bytes")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.runs < 1 or args.payload_bytes < 0:
        parser.error("need calls >= 1, runs >= 1, payload-bytes >= 0")
    with _common.redis_server(args.redis_url) as url:
        report = run(url, bool(args.redis_url), args)
    return _common.finish(report, args, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
