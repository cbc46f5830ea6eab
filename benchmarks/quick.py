"""A quick, honest benchmark of the atomic core: our calls beside Redis baselines of the same run.

Run it from the repository root::

    .venv/bin/python -m benchmarks.quick [--jobs N] [--runs R] [--batch B]
        [--payload-bytes P] [--json PATH] [--chart PNG] [--redis-url URL]

Without ``--redis-url`` it starts a throwaway ``redis-server`` on a free loopback port and stops
it at the end. With ``--redis-url`` the database at that URL is FLUSHED before every measurement.

Method: one warm-up pass of every measurement, then ``R`` rounds; in each round every
measurement runs once on a freshly flushed database (interleaving baselines and our figures, so
a noisy neighbour hurts both alike). Each figure is the median over the rounds. Every clock
starts just before the first request and stops when the last reply has been received.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.commands.core import Script

from scheduler import JobSpec, Queue, State, Status

from . import _common
from ._common import chunks, percentile, stopwatch
from ._common import environment as environment  # re-exported: other benchmarks import it here

QUEUE_NAME = "bench"
NOOP_SCRIPT = "return 1"
NOOP_KEY = "bench:{noop}"
LIST_KEY = "bench:{list}"
PIPELINE_BATCH = 100
WARMUP_JOBS = 1000


@dataclass
class Timing:
    """One timed measurement: ``count`` operations in ``seconds``, and per-call latencies."""

    count: int
    seconds: float
    latencies_s: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Operations per second."""
        return self.count / self.seconds


@dataclass
class Bench:
    """Everything a measurement needs: the clients, the no-op script and the payload."""

    client: redis.Redis
    queue: Queue
    noop: Script
    payload: bytes
    batch: int


Measure = Callable[[Bench, int], Timing]


def timed_calls(count: int, call: Callable[[], Any]) -> Timing:
    """Make ``count`` sequential calls; time the whole and each one."""
    return Timing(count, *_common.timed_calls(count, call))


# -- baselines: plain Redis, same server, same connection ------------------------------------


def measure_ping(bench: Bench, n: int) -> Timing:
    """Sequential PING."""
    return timed_calls(n, bench.client.ping)


def measure_noop_evalsha(bench: Bench, n: int) -> Timing:
    """Sequential EVALSHA of ``return 1`` with one key, through redis-py's Script (as Queue)."""
    return timed_calls(n, lambda: bench.noop(keys=[NOOP_KEY]))


def measure_pipelined_noop(bench: Bench, n: int) -> Timing:
    """EVALSHA of the no-op script, pipelined in batches of 100 (no MULTI)."""
    sha = bench.client.script_load(NOOP_SCRIPT)
    with stopwatch() as elapsed:
        for part in chunks(range(n), PIPELINE_BATCH):
            pipe = bench.client.pipeline(transaction=False)
            for _ in part:
                pipe.evalsha(sha, 1, NOOP_KEY)
            pipe.execute()
    return Timing(n, elapsed[0])


def measure_lpush_rpop(bench: Bench, n: int) -> Timing:
    """Sequential LPUSH of the payload then RPOP of it; ``count`` is in pairs."""
    client, payload = bench.client, bench.payload

    def pair() -> None:
        client.lpush(LIST_KEY, payload)
        client.rpop(LIST_KEY)

    return timed_calls(n, pair)


# -- our figures: the public Queue API ---------------------------------------------------------


def expect_waiting(bench: Bench, n: int) -> None:
    """Check (after the clock stopped) that ``n`` jobs wait: nothing was lost or doubled."""
    waiting = bench.queue.stats(active_limit=0).counts.get(State.WAITING, 0)
    if waiting != n:
        raise RuntimeError(f"expected {n} waiting jobs, found {waiting}")


def measure_enqueue(bench: Bench, n: int) -> Timing:
    """``Queue.enqueue`` one job at a time."""
    timing = timed_calls(n, lambda: bench.queue.enqueue(bench.payload))
    expect_waiting(bench, n)
    return timing


def measure_enqueue_many(bench: Bench, n: int) -> Timing:
    """``Queue.enqueue_many`` in batches of ``bench.batch`` (specs built before the clock)."""
    batches = chunks([JobSpec(bench.payload) for _ in range(n)], bench.batch)
    with stopwatch() as elapsed:
        for specs in batches:
            bench.queue.enqueue_many(specs)
    expect_waiting(bench, n)
    return Timing(n, elapsed[0])


def measure_drain(bench: Bench, n: int) -> Timing:
    """Fill ``n`` jobs (untimed), then time rounds of ``claim(count=B)`` + ``complete_many``.

    Latencies are per round (one claim and one complete_many).
    """
    for specs in chunks([JobSpec(bench.payload) for _ in range(n)], 1000):
        bench.queue.enqueue_many(specs)
    queue, done, accepted = bench.queue, 0, 0
    latencies: list[float] = []
    clock = time.perf_counter
    with stopwatch() as elapsed:
        while done < n:
            before = clock()
            jobs = queue.claim("bench-worker", count=bench.batch).jobs
            if not jobs:
                break
            statuses = queue.complete_many([(job, None) for job in jobs])
            latencies.append(clock() - before)
            done += len(jobs)
            accepted += sum(item.status is Status.OK for item in statuses)
    if done != n or accepted != n:
        raise RuntimeError(f"drained {done} and completed {accepted} of {n} jobs")
    return Timing(n, elapsed[0], latencies)


MEASUREMENTS: dict[str, Measure] = {
    "ping": measure_ping,
    "noop_evalsha": measure_noop_evalsha,
    "noop_evalsha_pipelined": measure_pipelined_noop,
    "lpush_rpop": measure_lpush_rpop,
    "enqueue": measure_enqueue,
    "enqueue_many": measure_enqueue_many,
    "drain": measure_drain,
}

THROUGHPUT_LABELS = {
    "ping": ("baseline: PING, sequential", "ops/s"),
    "noop_evalsha": ("baseline: no-op EVALSHA, sequential", "ops/s"),
    "noop_evalsha_pipelined": ("baseline: no-op EVALSHA, pipelined x100", "ops/s"),
    "lpush_rpop": ("baseline: LPUSH+RPOP pairs, sequential", "pairs/s"),
    "enqueue": ("enqueue, one at a time", "jobs/s"),
    "enqueue_many": ("enqueue_many, batches of B", "jobs/s"),
    "drain": ("drain: claim(B) + complete_many", "jobs/s"),
}
LATENCY_LABELS = {
    "enqueue": "enqueue latency per call",
    "drain": "claim + complete_many latency per round",
}


def run_all(bench: Bench, jobs: int, runs: int) -> dict[str, list[Timing]]:
    """One warm-up pass, then ``runs`` rounds of every measurement, each on a flushed db."""
    warmup = min(jobs, WARMUP_JOBS)
    for measure in MEASUREMENTS.values():
        bench.client.flushdb()
        measure(bench, warmup)
    timings: dict[str, list[Timing]] = {name: [] for name in MEASUREMENTS}
    for _ in range(runs):
        for name, measure in MEASUREMENTS.items():
            bench.client.flushdb()
            timings[name].append(measure(bench, jobs))
    bench.client.flushdb()
    return timings


def summarise(timings: dict[str, list[Timing]], batch: int) -> dict[str, dict[str, Any]]:
    """Throughput and latency figures (medians over runs) and the enqueue/EVALSHA ratio."""
    figures = {}
    for name, runs in timings.items():
        label, unit = THROUGHPUT_LABELS[name]
        label = label.replace("of B", f"of {batch}").replace("claim(B)", f"claim({batch})")
        figures[name] = _common.figure(label, unit, [t.rate for t in runs])
    for name, label in LATENCY_LABELS.items():
        for pct in (50, 99):
            per_run = [percentile(t.latencies_s, pct) * 1000 for t in timings[name]]
            figures[f"{name}_p{pct}_ms"] = _common.figure(f"{label}, p{pct}", "ms", per_run)
    ratios = [
        ours.rate / base.rate
        for ours, base in zip(timings["enqueue"], timings["noop_evalsha"], strict=True)
    ]
    figures["enqueue_vs_noop_evalsha"] = _common.figure(
        "ratio: enqueue / no-op EVALSHA", "ratio", ratios
    )
    return figures


def benchmark(url: str, given_url: bool, args: Any) -> dict[str, Any]:
    """Run every measurement against the Redis at ``url`` and build the report."""
    settings = {
        "jobs": args.jobs,
        "runs": args.runs,
        "batch": args.batch,
        "payload_bytes": args.payload_bytes,
    }
    report = _common.new_report("quick", "scheduler quick benchmark", url, given_url, settings)
    client = _common.connect(url)
    try:
        bench = Bench(
            client=client,
            queue=Queue(client, QUEUE_NAME),
            noop=client.register_script(NOOP_SCRIPT),
            payload=b"x" * args.payload_bytes,
            batch=args.batch,
        )
        report["figures"] = summarise(run_all(bench, args.jobs, args.runs), args.batch)
        return report
    finally:
        client.close()


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its table, write its JSON if asked; return the report."""
    parser = _common.parser("benchmarks.quick", __doc__)
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs (and ops) per measurement")
    parser.add_argument("--batch", type=int, default=100, help="enqueue_many/claim batch size")
    parser.add_argument("--payload-bytes", type=int, default=100, help="payload: bytes of size P")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.runs < 1 or not 1 <= args.batch <= 1000 or args.payload_bytes < 0:
        parser.error("need jobs >= 1, runs >= 1, 1 <= batch <= 1000, payload-bytes >= 0")
    with _common.redis_server(args.redis_url) as url:
        report = benchmark(url, bool(args.redis_url), args)
    return _common.finish(report, args, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
