"""End-to-end throughput: enqueue one at a time, enqueue in batches, drain with the thread worker
and with the asyncio worker; for each payload size and each number of processes.

    .venv/bin/python -m benchmarks.throughput [--jobs 10000] [--runs 3] [--batch 100]
        [--payloads 100,1024,10240] [--processes 1,2,4] [--modes ...] [--json PATH]
        [--chart PNG] [--redis-url URL]

Every producer and worker is a process of its own (``spawn``), started once and reused. For each
measurement the database is flushed; the agents get ready (clients connected, scripts loaded,
worker built), and the clock starts once *all* are ready:

* ``enqueue``: P producer processes each enqueue N/P jobs one at a time; the clock stops when
  the last producer has its last reply; then N waiting jobs are checked.
* ``enqueue_many``: the same with ``enqueue_many`` in batches of B.
* ``drain_sync`` / ``drain_async``: N jobs are enqueued first (untimed); P worker processes
  (``Worker``, 8 threads / ``AsyncWorker``, 64 tasks; no-op handler) drain them; the clock stops
  when the queue's stats count N completed jobs (polled every 5 ms: the server has confirmed the
  last ack); then N completed, none active or dead, is checked.

Modes, payloads and process counts are interleaved within each run; figures are medians of runs.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from scheduler import JobSpec, Queue, State

from . import _common
from ._agents import ASYNC_TASKS, SYNC_PREFETCH, SYNC_THREADS, AgentPool

QUEUE = "throughput"
MODES = ("enqueue", "enqueue_many", "drain_sync", "drain_async")
MODE_LABELS = {
    "enqueue": "enqueue, one at a time",
    "enqueue_many": "enqueue_many, batches of {batch}",
    "drain_sync": f"drain, Worker ({SYNC_THREADS} threads, prefetch {SYNC_PREFETCH})",
    "drain_async": f"drain, AsyncWorker ({ASYNC_TASKS} tasks)",
}
TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Cell:
    """One measurement: a mode, a payload size and a number of processes."""

    mode: str
    payload_bytes: int
    processes: int

    @property
    def key(self) -> str:
        """The figure's key in the report."""
        return f"{self.mode}_{self.payload_bytes}B_{self.processes}p"

    def label(self, batch: int) -> str:
        """The figure's label."""
        noun = "producer" if self.mode.startswith("enqueue") else "worker"
        plural = "es" if self.processes > 1 else ""
        mode = MODE_LABELS[self.mode].format(batch=batch)
        return f"{mode}, {self.payload_bytes} B, {self.processes} {noun} process{plural}"


def split(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` near-equal whole numbers."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def fill(client: redis.Redis, jobs: int, payload_bytes: int) -> Queue:
    """Enqueue ``jobs`` jobs of ``payload_bytes`` (untimed) on the flushed database."""
    queue = Queue(client, QUEUE)
    payload = b"x" * payload_bytes
    for start in range(0, jobs, 1000):
        queue.enqueue_many([JobSpec(payload) for _ in range(start, min(jobs, start + 1000))])
    return queue


def counts(queue: Queue) -> dict[State, int]:
    """The queue's job counts per state."""
    return queue.stats(active_limit=0).counts


def measure_enqueue(pool: AgentPool, url: str, cell: Cell, jobs: int, batch: int) -> float:
    """Jobs per second enqueued by ``cell.processes`` producers."""
    size = 1 if cell.mode == "enqueue" else batch
    shares = split(jobs, cell.processes)
    params = [
        {"url": url, "queue": QUEUE, "payload_bytes": cell.payload_bytes, "count": n, "batch": size}
        for n in shares
    ]
    pool.prepare(cell.processes, "produce", params)
    began = time.perf_counter()
    pool.go(cell.processes)
    pool.wait_done(cell.processes, TIMEOUT_S)
    elapsed = time.perf_counter() - began
    client = _common.connect(url)
    waiting = counts(Queue(client, QUEUE)).get(State.WAITING, 0)
    client.close()
    if waiting != jobs:
        raise RuntimeError(f"{cell.key}: expected {jobs} waiting jobs, found {waiting}")
    return jobs / elapsed


def measure_drain(pool: AgentPool, url: str, cell: Cell, jobs: int) -> float:
    """Jobs per second drained by ``cell.processes`` worker processes."""
    client = _common.connect(url)
    queue = fill(client, jobs, cell.payload_bytes)
    params = [{"url": url, "queue": QUEUE} for _ in range(cell.processes)]
    pool.prepare(cell.processes, cell.mode, params)
    began = time.perf_counter()
    pool.go(cell.processes)
    ended = _common.wait_until(
        lambda: counts(queue).get(State.COMPLETED, 0) >= jobs, TIMEOUT_S, what="the drain"
    )
    pool.stop(cell.processes)
    settled = counts(queue)
    client.close()
    if settled.get(State.COMPLETED) != jobs or settled.get(State.ACTIVE) or settled.get(State.DEAD):
        raise RuntimeError(f"{cell.key}: drain did not settle: {settled}")
    return jobs / (ended - began)


def measure(pool: AgentPool, url: str, cell: Cell, jobs: int, batch: int) -> float:
    """One measurement of ``cell`` on a flushed database."""
    client = _common.connect(url)
    client.flushdb()
    client.close()
    if cell.mode.startswith("enqueue"):
        return measure_enqueue(pool, url, cell, jobs, batch)
    return measure_drain(pool, url, cell, jobs)


def int_list(text: str) -> list[int]:
    """``"1,2,4"`` as ``[1, 2, 4]``."""
    return [int(part) for part in text.split(",") if part.strip()]


def run(url: str, given_url: bool, args: Any) -> dict[str, Any]:
    """Warm up, then every cell once per run; the report."""
    cells = [
        Cell(mode, payload, processes)
        for payload in args.payloads
        for processes in args.processes
        for mode in args.modes
    ]
    settings = {
        "jobs": args.jobs,
        "runs": args.runs,
        "batch": args.batch,
        "payloads": args.payloads,
        "processes": args.processes,
        "modes": list(args.modes),
        "sync_threads": SYNC_THREADS,
        "sync_prefetch": SYNC_PREFETCH,
        "async_tasks": ASYNC_TASKS,
    }
    report = _common.new_report("throughput", "end-to-end throughput", url, given_url, settings)
    rates: dict[Cell, list[float]] = {cell: [] for cell in cells}
    with AgentPool(max(args.processes)) as pool:
        for mode in args.modes:  # warm-up: every kind of agent once, untimed
            warm = Cell(mode, args.payloads[0], max(args.processes))
            measure(pool, url, warm, min(args.jobs, 1000), args.batch)
        for _ in range(args.runs):
            for cell in cells:
                rates[cell].append(measure(pool, url, cell, args.jobs, args.batch))
    for cell in cells:
        report["figures"][cell.key] = _common.figure(cell.label(args.batch), "jobs/s", rates[cell])
    return report


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse the arguments, run, print the table, write JSON/chart if asked; the report."""
    parser = _common.parser("benchmarks.throughput", __doc__)
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs per measurement")
    parser.add_argument("--batch", type=int, default=100, help="enqueue_many batch size")
    parser.add_argument("--payloads", type=int_list, default=[100, 1024, 10240])
    parser.add_argument("--processes", type=int_list, default=[1, 2, 4])
    parser.add_argument(
        "--modes", type=lambda text: text.split(","), default=list(MODES), help=",".join(MODES)
    )
    args = parser.parse_args(argv)
    if set(args.modes) - set(MODES) or args.jobs < max(args.processes) or args.runs < 1:
        parser.error(f"modes are {', '.join(MODES)}; need jobs >= processes, runs >= 1")
    with _common.redis_server(args.redis_url) as url:
        report = run(url, bool(args.redis_url), args)
    return _common.finish(report, args, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
