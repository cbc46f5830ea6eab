"""Latency from enqueue to start and from enqueue to acknowledged, at a fixed offered load.

    .venv/bin/python -m benchmarks.latency [--rate 1000] [--seconds 5] [--runs 3] [--json PATH]
        [--chart PNG] [--redis-url URL]

One idle worker process (``Worker``, 8 threads, then ``AsyncWorker``, 64 tasks; no-op handler)
waits on the queue. This process enqueues ``rate`` jobs per second, one at a time, on a fixed
schedule (open loop: a job is sent at its scheduled time, or at once when behind), each payload
carrying ``time.monotonic_ns()`` taken just before its enqueue call (about 100 bytes). In the
worker, the handler notes when it starts, and the queue notes when ``complete_many`` has the
server's reply for the job. Both clocks are the machine's monotonic clock, shared by processes.

* enqueue -> start: from just before ``enqueue`` is called to the handler's first line;
* enqueue -> acknowledged: to the moment the worker holds the server's reply to the completion.

The first 0.5 s of jobs are sent untimed (warm-up). Percentiles (nearest rank) are per run;
figures are medians of runs. The achieved offered rate is reported too.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

from scheduler import Queue, State

from . import _common
from ._agents import ASYNC_TASKS, SYNC_PREFETCH, SYNC_THREADS, AgentPool

QUEUE = "latency"
PAD = b"x" * 80
RUNTIMES = {
    "sync": (f"Worker ({SYNC_THREADS} threads, prefetch {SYNC_PREFETCH})", "drain_sync"),
    "async": (f"AsyncWorker ({ASYNC_TASKS} tasks)", "drain_async"),
}
WARMUP_S = 0.5


def offer(queue: Queue, rate: float, seconds: float) -> tuple[int, float]:
    """Enqueue ``rate`` jobs per second for ``seconds``; how many were sent, and the rate
    achieved."""
    interval = 1.0 / rate
    total = max(1, round(rate * seconds))
    began = time.perf_counter()
    for i in range(total):
        due = began + i * interval
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        queue.enqueue({"t": time.monotonic_ns(), "p": PAD})
    elapsed = time.perf_counter() - began
    return total, total / elapsed if elapsed > 0 else float(total)


def one_run(pool: AgentPool, url: str, task: str, rate: float, seconds: float) -> dict[str, float]:
    """One run with one worker: percentiles in ms and the achieved rate."""
    client = _common.connect(url)
    client.flushdb()
    queue = Queue(client, QUEUE)
    pool.prepare(1, task, [{"url": url, "queue": QUEUE, "timed": True}])
    pool.go(1)
    warm, _ = offer(queue, rate, WARMUP_S)
    cutoff = time.monotonic_ns()
    sent, achieved = offer(queue, rate, seconds)
    _common.wait_until(
        lambda: queue.stats(active_limit=0).counts.get(State.COMPLETED, 0) >= warm + sent,
        60,
        what="the last completion",
    )
    [info] = pool.stop(1)
    client.close()
    jobs = [job for job in info["jobs"] if job[0] >= cutoff]
    if len(info["jobs"]) != warm + sent or len(jobs) != sent:
        raise RuntimeError(f"sent {warm} + {sent} jobs, the worker timed {len(info['jobs'])}")
    start_ms = [job[1] / 1e6 for job in jobs]
    ack_ms = [job[2] / 1e6 for job in jobs]
    return {
        "start_p50": _common.percentile(start_ms, 50),
        "start_p99": _common.percentile(start_ms, 99),
        "ack_p50": _common.percentile(ack_ms, 50),
        "ack_p99": _common.percentile(ack_ms, 99),
        "rate": achieved,
    }


def run(url: str, given_url: bool, args: Any) -> dict[str, Any]:
    """Every runtime, ``runs`` times, alternating; the report."""
    settings = {"rate": args.rate, "seconds": args.seconds, "runs": args.runs}
    report = _common.new_report(
        "latency", "latency at a fixed offered load", url, given_url, settings
    )
    results: dict[str, list[dict[str, float]]] = {name: [] for name in args.runtimes}
    with AgentPool(1) as pool:
        for _ in range(args.runs):
            for name in args.runtimes:
                task = RUNTIMES[name][1]
                results[name].append(one_run(pool, url, task, args.rate, args.seconds))
    for name in args.runtimes:
        label = RUNTIMES[name][0]
        runs = results[name]
        for key, what in (
            ("start_p50", "enqueue -> start, p50"),
            ("start_p99", "enqueue -> start, p99"),
            ("ack_p50", "enqueue -> acknowledged, p50"),
            ("ack_p99", "enqueue -> acknowledged, p99"),
        ):
            report["figures"][f"{name}_{key}_ms"] = _common.figure(
                f"{label}: {what}", "ms", [r[key] for r in runs]
            )
        report["figures"][f"{name}_offered_rate"] = _common.figure(
            f"{label}: offered load achieved", "jobs/s", [r["rate"] for r in runs]
        )
    report["notes"].append("target (issue 5): p50 < 1 ms and p99 < 5 ms at 1,000 jobs/s")
    return report


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse the arguments, run, print the table, write JSON/chart if asked; the report."""
    parser = _common.parser("benchmarks.latency", __doc__)
    parser.add_argument("--rate", type=float, default=1000.0, help="offered jobs per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per run")
    parser.add_argument(
        "--runtimes", type=lambda text: text.split(","), default=list(RUNTIMES), help="sync,async"
    )
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.seconds <= 0 or args.runs < 1 or set(args.runtimes) - set(RUNTIMES):
        parser.error("need rate > 0, seconds > 0, runs >= 1, runtimes among sync,async")
    with _common.redis_server(args.redis_url) as url:
        report = run(url, bool(args.redis_url), args)
    return _common.finish(report, args, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
