"""The command line: ``python -m scheduler COMMAND`` (also installed as ``scheduler``).

Commands: demo, worker, enqueue, stats, inspect, dead, cancel, doctor; ``COMMAND --help``
for each. Exit codes: 0 ok, 1 an error, 2 wrong usage; every error is one line on stderr
(``--debug`` adds its traceback).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import redis

from . import cli
from ._cli_common import (
    EXIT_USAGE,
    PROG,
    CliParser,
    CommandFailed,
    UsageError,
    add_debug_option,
    command_name,
    int_in,
    redis_url,
    run_command,
    say,
)
from ._local_redis import LocalRedis
from .demo import (
    BULK_LEASE_MS,
    TASKS,
    format_bulk_report,
    format_seed_report,
    run_bulk,
    run_seed_scenario,
)

EXIT_OK = 0
EXIT_FAILED = 1
MAX_DEMO_JOBS = 1_000_000
MAX_DEMO_PROCESSES = 64


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


def run_demo(args: argparse.Namespace) -> int:
    """``demo``: the seed scenario and the bulk run; exit 0 when every job completed once."""
    # The demo's own lines tell of the kill and the restart; keep the bar free of log lines.
    logging.getLogger("scheduler.supervisor").setLevel(logging.ERROR)
    try:
        return demo(args.redis_url, args.jobs, args.processes)
    except (TimeoutError, RuntimeError) as exc:  # a step did not finish, or no worker was left
        raise CommandFailed(f"the demo failed: {type(exc).__name__}: {exc}") from exc


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; its errors raise :class:`UsageError`."""
    parser = CliParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser(
        "demo", help="run the demo on a throwaway local Redis (or --redis-url)"
    )
    demo_parser.add_argument(
        "--redis-url",
        type=redis_url,
        default=os.environ.get("REDIS_URL") or None,
        help="an existing Redis to use (default: $REDIS_URL, else a throwaway local one)",
    )
    demo_parser.add_argument(
        "--jobs", type=int_in(1, MAX_DEMO_JOBS), default=3000, help="jobs in the bulk run"
    )
    demo_parser.add_argument(
        "--processes",
        type=int_in(1, MAX_DEMO_PROCESSES),
        default=3,
        help="worker processes in the bulk run",
    )
    add_debug_option(demo_parser)
    demo_parser.set_defaults(run=run_demo)
    cli.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run it; returns the exit code (0 ok, 1 an error, 2 wrong
    usage), every error reported on one line of stderr."""
    try:
        args, extra = build_parser().parse_known_args(argv)
        if extra:  # said here rather than by argparse, so that the message names the command
            raise UsageError(
                f"unrecognized arguments: {' '.join(extra)}", f"{PROG} {command_name(args)}"
            )
    except UsageError as exc:
        say(exc.prog or PROG, f"error: {exc}")
        return EXIT_USAGE
    if args.command != "demo":
        return cli.run(args)
    return run_command(args, args.run)


if __name__ == "__main__":
    sys.exit(main())
