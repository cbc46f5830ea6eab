"""The command line's commands besides ``demo``: ``worker``, ``enqueue``, ``stats``,
``inspect``, ``dead``, ``cancel`` and ``doctor``.

Every command takes ``--redis-url`` (default ``$REDIS_URL``, else ``redis://127.0.0.1:6379/0``),
``--prefix`` (default ``scheduler``) and ``--debug``. Exit codes: 0 ok; 2 wrong usage (a value
the command cannot take: a malformed URL, a bad queue name or prefix, a number out of range,
invalid JSON); 1 a server or job error (Redis unreachable, a job not found, a refused item, a
doctor finding) or an unexpected one. Every error is one line on stderr; ``--debug`` adds its
traceback.
"""

from __future__ import annotations

import argparse
from typing import Any

from ._cli_common import common_options, run_command, setup_logging
from ._cli_doctor import add_doctor_command
from ._cli_jobs import add_job_commands
from ._cli_stats import add_stats_command
from ._cli_worker import add_worker_command

Subparsers = Any  # argparse's _SubParsersAction, private in typeshed


def add_commands(commands: Subparsers) -> None:
    """Register every command of this module on ``commands`` (the demo is added apart)."""
    common = common_options()
    add_worker_command(commands, common)
    add_job_commands(commands, common)
    add_stats_command(commands, common)
    add_doctor_command(commands, common)


def run(args: argparse.Namespace) -> int:
    """Run the parsed command; an error becomes one line on stderr and exit code 2 (wrong
    usage) or 1 (anything else)."""
    setup_logging()
    return run_command(args, args.run)
