"""A quick, honest benchmark of the atomic core: our calls beside Redis baselines of the same run.

Run it from the repository root::

    .venv/bin/python -m benchmarks.quick [--jobs N] [--runs R] [--batch B]
        [--payload-bytes P] [--json PATH] [--redis-url URL]

Without ``--redis-url`` it starts a throwaway ``redis-server`` on a free loopback port and stops
it at the end. With ``--redis-url`` the database at that URL is FLUSHED before every measurement.

Method: one warm-up pass of every measurement, then ``R`` rounds; in each round every
measurement runs once on a freshly flushed database (interleaving baselines and our figures, so
a noisy neighbour hurts both alike). Each figure is the median over the rounds. Every clock
starts just before the first request and stops when the last reply has been received.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.commands.core import Script

from scheduler import JobSpec, Queue, State, Status
from scheduler._local_redis import LocalRedis

REPO_ROOT = Path(__file__).resolve().parent.parent
QUEUE_NAME = "bench"
NOOP_SCRIPT = "return 1"
NOOP_KEY = "bench:{noop}"
LIST_KEY = "bench:{list}"
PIPELINE_BATCH = 100
WARMUP_JOBS = 1000


@dataclass(frozen=True)
class Settings:
    """What one benchmark run measures, from the command line."""

    jobs: int
    runs: int
    batch: int
    payload_bytes: int
    redis_url: str | None = None
    json_path: str | None = None


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


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """Yield a one-item list that holds the elapsed seconds once the block ends."""
    elapsed = [0.0]
    start = time.perf_counter()
    try:
        yield elapsed
    finally:
        elapsed[0] = time.perf_counter() - start


def timed_calls(count: int, call: Callable[[], Any]) -> Timing:
    """Make ``count`` sequential calls; time the whole and each one."""
    latencies: list[float] = []
    clock = time.perf_counter
    with stopwatch() as elapsed:
        for _ in range(count):
            before = clock()
            call()
            latencies.append(clock() - before)
    return Timing(count, elapsed[0], latencies)


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    """``items`` cut into consecutive slices of at most ``size``."""
    return [items[i : i + size] for i in range(0, len(items), size)]


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


# -- running, summarising, reporting ----------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile of ``values`` (non-empty)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def run_all(bench: Bench, settings: Settings) -> dict[str, list[Timing]]:
    """One warm-up pass, then ``runs`` rounds of every measurement, each on a flushed db."""
    warmup = min(settings.jobs, WARMUP_JOBS)
    for measure in MEASUREMENTS.values():
        bench.client.flushdb()
        measure(bench, warmup)
    timings: dict[str, list[Timing]] = {name: [] for name in MEASUREMENTS}
    for _ in range(settings.runs):
        for name, measure in MEASUREMENTS.items():
            bench.client.flushdb()
            timings[name].append(measure(bench, settings.jobs))
    bench.client.flushdb()
    return timings


def figure(unit: str, runs: list[float]) -> dict[str, Any]:
    """One reported figure: its unit, the median over runs, and every run."""
    return {"unit": unit, "median": statistics.median(runs), "runs": runs}


def summarise(timings: dict[str, list[Timing]]) -> dict[str, dict[str, Any]]:
    """Throughput and latency figures (medians over runs) and the enqueue/EVALSHA ratio."""
    figures = {
        name: figure(THROUGHPUT_LABELS[name][1], [t.rate for t in runs])
        for name, runs in timings.items()
    }
    for name in LATENCY_LABELS:
        for pct in (50, 99):
            per_run = [percentile(t.latencies_s, pct) * 1000 for t in timings[name]]
            figures[f"{name}_p{pct}_ms"] = figure("ms", per_run)
    ratios = [
        ours.rate / base.rate
        for ours, base in zip(timings["enqueue"], timings["noop_evalsha"], strict=True)
    ]
    figures["enqueue_vs_noop_evalsha"] = figure("ratio", ratios)
    return figures


def git_commit() -> str:
    """The repository's ``HEAD`` commit, or ``unknown``."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def environment(client: redis.Redis) -> dict[str, Any]:
    """The Redis version, the machine and the commit this run measured."""
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "redis_version": str(client.info("server")["redis_version"]),
        "redis_py_version": redis.__version__,
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
        },
    }


def render(report: dict[str, Any]) -> str:
    """The report as a readable table."""
    s, m = report["settings"], report["machine"]
    lines = [
        f"scheduler quick benchmark, {report['date']}, commit {report['commit'][:12]}",
        f"Redis {report['redis_version']}, redis-py {report['redis_py_version']}, "
        f"Python {m['python']}, {m['cpu_count']} CPUs, {m['platform']}",
        f"jobs={s['jobs']} runs={s['runs']} batch={s['batch']} "
        f"payload={s['payload_bytes']} B; medians over runs",
        "",
        f"{'figure':<44}{'median':>12}  {'unit':<9}runs",
    ]
    labels = {name: label for name, (label, _) in THROUGHPUT_LABELS.items()}
    for name, label in LATENCY_LABELS.items():
        labels[f"{name}_p50_ms"] = f"{label}, p50"
        labels[f"{name}_p99_ms"] = f"{label}, p99"
    labels["enqueue_vs_noop_evalsha"] = "ratio: enqueue / no-op EVALSHA"
    for name, label in labels.items():
        fig = report["figures"][name]
        fmt = "{:,.0f}" if fig["unit"].endswith("/s") else "{:.3f}"
        runs = " ".join(fmt.format(v) for v in fig["runs"])
        lines.append(f"{label:<44}{fmt.format(fig['median']):>12}  {fig['unit']:<9}{runs}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> Settings:
    """Read the command line into :class:`Settings`."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quick", description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs (and ops) per measurement")
    parser.add_argument("--runs", type=int, default=3, help="rounds; figures are medians")
    parser.add_argument("--batch", type=int, default=100, help="enqueue_many/claim batch size")
    parser.add_argument("--payload-bytes", type=int, default=100, help="payload: bytes of size P")
    parser.add_argument("--json", dest="json_path", help="write the report as JSON here")
    parser.add_argument("--redis-url", help="use this Redis (its database is FLUSHED)")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.runs < 1 or not 1 <= args.batch <= 1000 or args.payload_bytes < 0:
        parser.error("need jobs >= 1, runs >= 1, 1 <= batch <= 1000, payload-bytes >= 0")
    return Settings(**vars(args))


def benchmark(settings: Settings, url: str) -> dict[str, Any]:
    """Run every measurement against the Redis at ``url`` and build the report."""
    client = redis.Redis.from_url(url, socket_timeout=30)
    try:
        bench = Bench(
            client=client,
            queue=Queue(client, QUEUE_NAME),
            noop=client.register_script(NOOP_SCRIPT),
            payload=b"x" * settings.payload_bytes,
            batch=settings.batch,
        )
        report = environment(client)
        report["settings"] = {
            **{k: v for k, v in asdict(settings).items() if k not in ("json_path", "redis_url")},
            "redis": "given by --redis-url" if settings.redis_url else "throwaway local server",
        }
        report["figures"] = summarise(run_all(bench, settings))
        return report
    finally:
        client.close()


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its table, write its JSON if asked; return the report."""
    settings = parse_args(argv)
    if settings.redis_url:
        report = benchmark(settings, settings.redis_url)
    else:
        with LocalRedis() as server:
            report = benchmark(settings, server.url)
    print(render(report))
    if settings.json_path:
        Path(settings.json_path).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
