"""What every command of the command line shares: the Redis connection, queues, JSON output
and the error that means "wrong usage" (exit code 2)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from enum import Enum
from typing import Any

from . import connection
from .client import DEFAULT_PREFIX, Queue
from .connection import SyncClient

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_QUEUE = "default"
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class UsageError(Exception):
    """The command line asks for something that cannot be done as asked (exit code 2)."""


def common_options() -> argparse.ArgumentParser:
    """A parent parser with ``--redis-url`` and ``--prefix``, for every command but demo."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL,
        help=f"the Redis to use (default: $REDIS_URL, else {DEFAULT_REDIS_URL})",
    )
    parent.add_argument(
        "--prefix",
        default=DEFAULT_PREFIX,
        help=f"the first part of every key (default: {DEFAULT_PREFIX})",
    )
    return parent


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


def parse_json(text: str, kind: type, what: str) -> Any:
    """``text`` parsed as JSON of type ``kind`` (list or dict); a UsageError if it is not."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, kind):
        raise UsageError(f"{what} must be a JSON {'list' if kind is list else 'object'}")
    return value
