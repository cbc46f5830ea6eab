"""Throughput of one sharded queue on a Redis Cluster of 1, 2 and 3 primaries, same workers.

    .venv/bin/python -m benchmarks.cluster_scaling [--jobs 20000] [--runs 3] [--shards 6]
        [--processes 3] [--concurrency 8] [--primaries 1 2 3] [--json PATH]

For each cluster size a throwaway local cluster is started (``scheduler._local_cluster``; one
``redis-server`` per primary, slots split evenly). Each run flushes it, enqueues N no-op jobs
on a :class:`~scheduler.sharded.ShardedQueue` of S shards (untimed, in batches of 1000), then
starts P worker processes, each a thread ``Worker`` of C threads serving every shard, and times
from their start until the shards' stats add up to N completed (polled every 20 ms). The run
fails unless exactly N jobs completed, none dead or active. Medians over the runs.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scheduler import Job, JobSpec, State
from scheduler._local_cluster import LocalCluster
from scheduler.connection import connect
from scheduler.sharded import ShardedQueue
from scheduler.worker import JobContext, Worker

from .quick import environment

QUEUE = "scaling"


def noop(job: Job, context: JobContext) -> None:
    """The job: nothing."""


def work(nodes: list[tuple[str, int]], shards: int, concurrency: int, stop: Any) -> None:
    """One worker process: a thread Worker on every shard until ``stop`` is set."""
    client = connect(nodes)
    worker = Worker(ShardedQueue(client, QUEUE, shards), noop, concurrency=concurrency,
                    max_idle_s=0.5)  # fmt: skip
    import threading

    threading.Thread(target=lambda: (stop.wait(), worker.stop()), daemon=True).start()
    worker.run()


def one_run(cluster: LocalCluster, args: argparse.Namespace) -> float:
    """Jobs per second for one drain of ``args.jobs`` jobs."""
    cluster.flush()
    client = connect(cluster.startup_nodes)
    queue = ShardedQueue(client, QUEUE, args.shards)
    for start in range(0, args.jobs, 1000):
        queue.enqueue_many([JobSpec(None) for _ in range(start, min(args.jobs, start + 1000))])
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    procs = [
        context.Process(target=work, args=(cluster.startup_nodes, args.shards,
                                           args.concurrency, stop))
        for _ in range(args.processes)
    ]  # fmt: skip
    began = time.perf_counter()
    for proc in procs:
        proc.start()
    while queue.stats(active_limit=0).counts[State.COMPLETED] < args.jobs:
        if time.perf_counter() - began > 600:
            raise RuntimeError("drain timed out")
        time.sleep(0.02)
    elapsed = time.perf_counter() - began
    stop.set()
    for proc in procs:
        proc.join(30)
    counts = queue.stats(active_limit=0).counts
    if counts[State.COMPLETED] != args.jobs or counts[State.DEAD] or counts[State.ACTIVE]:
        raise RuntimeError(f"drain did not settle: {counts}")
    client.close()
    return args.jobs / elapsed


def shard_layout(cluster: LocalCluster, shards: int) -> list[int]:
    """How many shards each primary holds."""
    client = connect(cluster.startup_nodes)
    queue = ShardedQueue(client, QUEUE, shards)
    owners = [client.get_node_from_key(s.ops.keys.key("meta")).port for s in queue.shards]
    client.close()
    return sorted((owners.count(n.port) for n in cluster.primaries()), reverse=True)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse the arguments, run every cluster size, print a table, write JSON if asked."""
    parser = argparse.ArgumentParser(prog="benchmarks.cluster_scaling", description=__doc__)
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--shards", type=int, default=6)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--primaries", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"settings": vars(args), "figures": {}}
    for primaries in args.primaries:
        with LocalCluster(primaries) as cluster:
            rates = [one_run(cluster, args) for _ in range(args.runs)]
            layout = shard_layout(cluster, args.shards)
            node = cluster.nodes[0].client()
            report.update(environment(node))
            node.close()
        report["figures"][primaries] = {
            "median_jobs_per_s": statistics.median(rates), "runs": rates, "shards": layout,
        }  # fmt: skip
    print(
        f"one queue of {args.shards} shards, {args.jobs} no-op jobs, {args.processes} worker "
        f"processes x {args.concurrency} threads, medians of {args.runs} runs"
    )
    print(f"Redis {report['redis_version']}, commit {report['commit'][:12]}, {report['date']}")
    for primaries, figure in report["figures"].items():
        runs = " ".join(f"{rate:,.0f}" for rate in figure["runs"])
        print(
            f"  {primaries} primar{'y' if primaries == 1 else 'ies'} (shards per node "
            f"{figure['shards']}): {figure['median_jobs_per_s']:>8,.0f} jobs/s   ({runs})"
        )
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
