"""The command line: ``python -m scheduler demo`` (also installed as ``scheduler``)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import redis

from ._local_redis import LocalRedis
from .demo import SeedReport, bulk_run, run_seed_scenario


def print_seed_report(report: SeedReport) -> None:
    """The monitor's snapshots and the summary of the seed scenario."""
    for number, rows in enumerate(report.snapshots, 1):
        print(f"\nmonitor, snapshot {number}:")
        print(f"  {'task':<6}{'worker':<12}{'attempt':>8}{'lease left':>12}")
        for row in rows:
            print(f"  {row.task:<6}{row.worker:<12}{row.attempt:>8}{row.lease_left_s:>11.1f}s")
    print("\nresults:")
    for task, worker in sorted(report.completed_by.items()):
        state = report.final_states[task].value
        print(f"  task {task}: {state} by {worker}, accepted completions: {report.accepted[task]}")
    once = sum(1 for count in report.accepted.values() if count == 1)
    print(f"\n{once} of {len(report.final_states)} tasks completed exactly once")


def demo(url: str | None, jobs: int) -> int:
    """Run the seed scenario and a bulk drain against ``url``, or a throwaway local Redis."""
    server = None
    if url is None:
        server = LocalRedis().start()
        url = server.url
        print(f"started a throwaway redis-server at {url}")
    try:
        client = redis.Redis.from_url(url)
        print("\nthe seed scenario: a manager enqueues tasks A, B and C; two workers take them")
        report = run_seed_scenario(client)
        print_seed_report(report)
        print(f"\nbulk: {jobs} jobs, enqueued in batches, drained by 2 threads")
        rate = bulk_run(client, jobs=jobs)
        print(f"  {jobs} jobs claimed, leased and acknowledged at {rate:,.0f} jobs/s")
        client.close()
        ok = all(count == 1 for count in report.accepted.values()) and len(report.accepted) == 3
        return 0 if ok else 1
    finally:
        if server is not None:
            server.stop()
            print("stopped the throwaway redis-server")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run it; returns the exit code."""
    parser = argparse.ArgumentParser(prog="scheduler", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser(
        "demo", help="run the demo on a throwaway local Redis (or --redis-url)"
    )
    demo_parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL"),
        help="an existing Redis to use (default: $REDIS_URL, else a throwaway local one)",
    )
    demo_parser.add_argument("--jobs", type=int, default=5000, help="jobs in the bulk run")
    args = parser.parse_args(argv)
    return demo(args.redis_url, args.jobs)


if __name__ == "__main__":
    sys.exit(main())
