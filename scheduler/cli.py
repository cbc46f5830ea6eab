"""The command line's commands besides ``demo``: ``worker``, ``enqueue``, ``stats``,
``inspect``, ``dead``, ``cancel`` and ``doctor``.

Every command takes ``--redis-url`` (default ``$REDIS_URL``, else ``redis://127.0.0.1:6379/0``)
and ``--prefix`` (default ``scheduler``). Exit codes: 0 ok, 1 an error (Redis unreachable, a
job not found, a refused item, a doctor finding), 2 wrong usage.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import redis

from ._cli_common import EXIT_ERROR, EXIT_USAGE, UsageError, common_options, setup_logging
from ._cli_doctor import add_doctor_command
from ._cli_jobs import add_job_commands
from ._cli_stats import add_stats_command
from ._cli_worker import add_worker_command
from .errors import SchedulerError

Subparsers = Any  # argparse's _SubParsersAction, private in typeshed


def add_commands(commands: Subparsers) -> None:
    """Register every command of this module on ``commands`` (the demo is added apart)."""
    common = common_options()
    add_worker_command(commands, common)
    add_job_commands(commands, common)
    add_stats_command(commands, common)
    add_doctor_command(commands, common)


def run(args: argparse.Namespace) -> int:
    """Run the parsed command; errors become a message on stderr and exit code 1 (2 for
    usage)."""
    setup_logging()
    try:
        code: int = args.run(args)
    except UsageError as exc:
        print(f"scheduler {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except redis.ConnectionError as exc:
        print(
            f"scheduler {args.command}: cannot reach Redis at {args.redis_url}: {exc}",
            file=sys.stderr,
        )
        return EXIT_ERROR
    except (SchedulerError, redis.RedisError) as exc:
        print(f"scheduler {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return code
