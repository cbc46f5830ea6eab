"""The command line: ``python -m scheduler COMMAND`` (also installed as ``scheduler``).

Commands: demo, worker, enqueue, stats, inspect, dead, cancel, doctor; ``COMMAND --help``
for each. Exit codes: 0 ok, 1 error, 2 wrong usage.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import redis

from . import cli
from ._local_redis import LocalRedis
from .demo import (
    BULK_LEASE_MS,
    TASKS,
    format_bulk_report,
    format_seed_report,
    run_bulk,
    run_seed_scenario,
)
from .errors import SchedulerError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


def run_demo_on(url: str, jobs: int, processes: int) -> int:
    """The seed scenario, then the supervised bulk run of ``jobs`` jobs on ``processes`` worker
    processes, on the Redis at ``url``."""
    client = redis.Redis.from_url(url)
    try:
        print("\nthe seed scenario: a manager enqueues tasks A, B and C; two workers take them")
        report = run_seed_scenario(client)
        print(format_seed_report(report))
    finally:
        client.close()
    print(
        f"\nbulk: {jobs} jobs of ~1 ms each, {processes} worker processes under a supervisor, "
        f"{BULK_LEASE_MS / 1000:.0f} s leases; one process is killed at about 40%",
        flush=True,
    )
    bulk = run_bulk(url, jobs=jobs, processes=processes)
    print(format_bulk_report(bulk))
    seed_ok = len(report.completed_exactly_once()) == len(TASKS)
    return EXIT_OK if seed_ok and bulk.exactly_once() else EXIT_FAILED


def demo(url: str | None, jobs: int, processes: int) -> int:
    """Run the demo against ``url``, or on a throwaway local Redis that is stopped at the end
    (also after an error or Ctrl-C)."""
    if url is not None:
        return run_demo_on(url, jobs, processes)
    server = LocalRedis()
    try:
        server.start()
        print(f"started a throwaway redis-server at {server.url}")
        return run_demo_on(server.url, jobs, processes)
    finally:
        server.stop()
        print("stopped the throwaway redis-server")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run it; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="scheduler", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser(
        "demo", help="run the demo on a throwaway local Redis (or --redis-url)"
    )
    demo_parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL") or None,
        help="an existing Redis to use (default: $REDIS_URL, else a throwaway local one)",
    )
    demo_parser.add_argument("--jobs", type=int, default=3000, help="jobs in the bulk run")
    demo_parser.add_argument(
        "--processes", type=int, default=3, help="worker processes in the bulk run"
    )
    cli.add_commands(commands)
    args = parser.parse_args(argv)
    if args.command != "demo":
        return cli.run(args)
    try:
        if args.jobs < 1 or args.processes < 1:
            parser.error("--jobs and --processes must be at least 1")
        # The demo's own lines tell of the kill and the restart; keep the bar free of log lines.
        logging.getLogger("scheduler.supervisor").setLevel(logging.ERROR)
        return demo(args.redis_url, args.jobs, args.processes)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (SchedulerError, redis.RedisError, TimeoutError, RuntimeError) as exc:
        print(f"the demo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
