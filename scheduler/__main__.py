"""The command line: ``python -m scheduler COMMAND`` (also installed as ``scheduler``).

Commands: demo, worker, enqueue, stats, inspect, dead, cancel, doctor; ``COMMAND --help``
for each. Exit codes: 0 ok, 1 error, 2 wrong usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import redis

from . import cli
from ._local_redis import LocalRedis
from .demo import TASKS, bulk_run, format_seed_report, run_seed_scenario
from .errors import SchedulerError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


def run_demo_on(url: str, jobs: int) -> int:
    """The seed scenario, then a bulk drain of ``jobs`` jobs, on the Redis at ``url``."""
    client = redis.Redis.from_url(url)
    try:
        print("\nthe seed scenario: a manager enqueues tasks A, B and C; two workers take them")
        report = run_seed_scenario(client)
        print(format_seed_report(report))
        print(f"\nbulk: {jobs} jobs, enqueued in batches, drained by 2 threads")
        rate = bulk_run(client, jobs=jobs)
        print(f"  {jobs} jobs claimed, leased and acknowledged at {rate:,.0f} jobs/s")
    finally:
        client.close()
    return EXIT_OK if len(report.completed_exactly_once()) == len(TASKS) else EXIT_FAILED


def demo(url: str | None, jobs: int) -> int:
    """Run the demo against ``url``, or on a throwaway local Redis that is stopped at the end
    (also after an error or Ctrl-C)."""
    if url is not None:
        return run_demo_on(url, jobs)
    server = LocalRedis()
    try:
        server.start()
        print(f"started a throwaway redis-server at {server.url}")
        return run_demo_on(server.url, jobs)
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
    demo_parser.add_argument("--jobs", type=int, default=2000, help="jobs in the bulk run")
    cli.add_commands(commands)
    args = parser.parse_args(argv)
    if args.command != "demo":
        return cli.run(args)
    try:
        return demo(args.redis_url, args.jobs)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (SchedulerError, redis.RedisError, TimeoutError, RuntimeError) as exc:
        print(f"the demo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
