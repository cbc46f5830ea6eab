"""What every command of the command line shares: the parser, the Redis connection, queues,
JSON output, the checks of typed values, and the one way errors become exit codes.

Exit codes: 0 ok; 2 wrong usage (a value the command line cannot take), one line on stderr;
1 a server or job error, or an unexpected one, one line on stderr. ``--debug`` adds the
traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import traceback
from collections.abc import Callable
from enum import Enum
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.connection import parse_url

from . import connection
from ._keys import validate_prefix, validate_queue_name
from ._validate import check_id
from .client import DEFAULT_PREFIX, Queue
from .connection import SyncClient, split_cluster_flag
from .errors import SchedulerError

T = TypeVar("T")
PROG = "scheduler"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_QUEUE = "default"
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DEBUG_HINT = " (run with --debug for the traceback)"


class UsageError(Exception):
    """The command line asks for something that cannot be done as asked (exit code 2).

    ``prog`` is the command it is about (``scheduler dead list``) when the parser raised it.
    """

    def __init__(self, message: str, prog: str | None = None) -> None:
        super().__init__(message)
        self.prog = prog


class CommandFailed(Exception):
    """The command ran and failed for a reason its message explains (exit code 1)."""


class CliParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise :class:`UsageError` (reported on one line) instead
    of printing the usage and exiting; subparsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        """Raise the parse error as a UsageError naming this (sub)command."""
        raise UsageError(message, prog=self.prog)


# -- values typed on the command line ------------------------------------------------------------


def typed(convert: Callable[[str], T], name: str) -> Callable[[str], T]:
    """``convert`` as an argparse ``type``: a SchedulerError or ValueError it raises becomes
    argparse's error for that option (so a bad value is a usage error, found before any I/O)."""

    def parse(text: str) -> T:
        try:
            return convert(text)
        except (SchedulerError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = name  # argparse names the type in some messages
    return parse


def _redis_url(text: str) -> str:
    url, _ = split_cluster_flag(text)
    parse_url(url)  # type: ignore[no-untyped-call]  # a ValueError: bad scheme, port or db
    return text


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"must be an integer in {low}..{high}, not {text!r}") from None
        if not low <= value <= high:
            raise ValueError(f"must be an integer in {low}..{high}, not {value}")
        return value

    return convert


def int_in(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in ``low..high``."""
    return typed(_int_in(low, high), "int")


def seconds_in(low: float, high: float, *, low_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number of seconds in ``low..high`` (above ``low`` when
    ``low_open``)."""

    def convert(text: str) -> float:
        bound = f"above {low:g}" if low_open else f"from {low:g}"
        try:
            value = float(text)
        except ValueError:
            value = math.nan  # refused below, with the range
        above_low = value > low if low_open else value >= low
        if not (math.isfinite(value) and above_low and value <= high):
            raise ValueError(f"must be a number of seconds {bound} to {high:g}, not {text!r}")
        return value

    return typed(convert, "seconds")


def _json_of(kind: type) -> Callable[[str], Any]:
    name = "list" if kind is list else "object"

    def convert(text: str) -> Any:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
        if not isinstance(value, kind):
            raise ValueError(f"must be a JSON {name}, not {text!r:.60}")
        return value

    return typed(convert, f"JSON {name}")


redis_url = typed(_redis_url, "Redis URL")
"""An argparse type: a ``redis://``, ``rediss://`` or ``unix://`` URL (``?cluster=yes`` too)."""
key_prefix = typed(validate_prefix, "prefix")
"""An argparse type: a key prefix (see :func:`scheduler._keys.validate_prefix`)."""
queue_name = typed(validate_queue_name, "queue name")
"""An argparse type: a queue name (see :func:`scheduler._keys.validate_queue_name`)."""
job_id = typed(check_id, "job id")
"""An argparse type: a job id (1-128 letters, digits or ``_ . : @ / + = -``)."""
worker_id = typed(lambda text: check_id(text, "worker id"), "worker id")
"""An argparse type: a worker id (the same alphabet as a job id)."""
json_list = _json_of(list)
"""An argparse type: a JSON list."""
json_object = _json_of(dict)
"""An argparse type: a JSON object."""


def common_options() -> argparse.ArgumentParser:
    """A parent parser with ``--redis-url``, ``--prefix`` and ``--debug``, for every command
    but demo."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--redis-url",
        type=redis_url,
        default=os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL,
        help=f"the Redis to use (default: $REDIS_URL, else {DEFAULT_REDIS_URL})",
    )
    parent.add_argument(
        "--prefix",
        type=key_prefix,
        default=DEFAULT_PREFIX,
        help=f"the first part of every key (default: {DEFAULT_PREFIX})",
    )
    add_debug_option(parent)
    return parent


def add_debug_option(parser: argparse.ArgumentParser) -> None:
    """``--debug``: print the traceback of an error as well as its one-line message."""
    parser.add_argument(
        "--debug", action="store_true", help="on an error, print its traceback as well"
    )


def setup_logging(level: int = logging.WARNING) -> None:
    """Log to stderr with time, level, logger and message."""
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr, force=True)


def connect(args: argparse.Namespace) -> SyncClient:
    """A client for ``--redis-url`` (bytes replies, bounded connect and read timeouts); a URL
    with ``?cluster=yes`` gives a Redis Cluster client (see :mod:`scheduler.connection`)."""
    return connection.connect(args.redis_url, socket_connect_timeout=5, socket_timeout=15)


def open_queue(args: argparse.Namespace, client: SyncClient, name: str) -> Queue:
    """The queue ``name`` under ``--prefix``."""
    return Queue(client, name, prefix=args.prefix)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: dataclasses as objects, enums as their values, bytes as
    text (undecodable bytes as their repr)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return repr(value)
    return value


def print_json(value: Any) -> None:
    """Print ``value`` as one line of JSON."""
    print(json.dumps(jsonable(value), sort_keys=True), flush=True)


# -- errors and exit codes -----------------------------------------------------------------------


def one_line(text: str) -> str:
    """``text`` with its line breaks (and runs of spaces) folded into single spaces."""
    return " ".join(text.split())


def redacted(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***`` (it goes into messages)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rpartition("@")[2]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:
        return "(a malformed URL)"


def command_name(args: argparse.Namespace) -> str:
    """The command as typed: ``stats``, ``dead list``."""
    return " ".join(part for part in (args.command, getattr(args, "action", None)) if part)


def say(prog: str, text: str) -> None:
    """One line on stderr: ``<prog>: <text>``."""
    print(one_line(f"{prog}: {text}"), file=sys.stderr, flush=True)


def error_report(exc: Exception, args: argparse.Namespace) -> tuple[int, str]:
    """The exit code and the message for an error a command raised."""
    if isinstance(exc, UsageError):
        return EXIT_USAGE, f"error: {exc}"
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        url = getattr(args, "redis_url", None)
        where = f" at {redacted(url)}" if url else ""
        return EXIT_ERROR, f"cannot reach Redis{where}: {exc}"
    if isinstance(exc, CommandFailed):
        return EXIT_ERROR, str(exc)
    if isinstance(exc, SchedulerError | redis.RedisError):
        return EXIT_ERROR, f"{type(exc).__name__}: {exc}"
    hint = "" if args.debug else DEBUG_HINT
    return EXIT_ERROR, f"internal error: {type(exc).__name__}: {exc}{hint}"


def run_command(args: argparse.Namespace, action: Callable[[argparse.Namespace], int]) -> int:
    """Run a parsed command; any error becomes one line on stderr and its exit code (2 wrong
    usage, 1 anything else), with the traceback before it under ``--debug``."""
    prog = f"{PROG} {command_name(args)}"
    try:
        return action(args)
    except KeyboardInterrupt:
        say(prog, "interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.debug:
            traceback.print_exception(exc, file=sys.stderr)
        code, text = error_report(exc, args)
        say(prog, text)
        return code
