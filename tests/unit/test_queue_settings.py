"""A queue's settings are checked where the queue is made: ``Queue``, ``AsyncQueue``,
``ShardedQueue`` and ``AsyncShardedQueue`` refuse a bad ``max_payload_bytes``, ``prefix``,
``name``, ``defaults`` or ``retention`` with a :class:`ConfigError` that names the argument and
its allowed range, and ``Retention`` refuses a bad field when it is made.

No Redis: the clients point at a loopback socket that listens but is never expected to be
connected to, and each test checks that making a queue (accepted or refused) never connected.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

from scheduler import ConfigError, JobOptions, Queue, Retention
from scheduler import client as client_module
from scheduler.aio import AsyncQueue
from scheduler.sharded import AsyncShardedQueue, ShardedQueue

MIB = 1024 * 1024
LIMIT = 512 * MIB
"""The documented largest ``max_payload_bytes``: Redis's largest string."""
QueueMaker = Callable[..., Any]
"""``make(name, **settings)``: one of the four queue classes on a client that is never used."""


class Listener:
    """A loopback socket that listens and counts the connections made to it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]

    def connections(self) -> int:
        """How many connections are waiting to be accepted (each one is accepted and closed)."""
        count = 0
        while True:
            try:
                peer, _ = self.sock.accept()
            except BlockingIOError:
                return count
            peer.close()
            count += 1


@pytest.fixture
def listener() -> Iterator[Listener]:
    """Where every client of these tests points."""
    found = Listener()
    yield found
    found.sock.close()


def sync_client(port: int) -> redis.Redis:
    """A client on ``port``, with short timeouts."""
    return redis.Redis(port=port, socket_connect_timeout=1)


def async_client(port: int) -> redis.asyncio.Redis:
    """An asyncio client on ``port`` (its constructor connects to nothing)."""
    return redis.asyncio.Redis(port=port, socket_connect_timeout=1)


QUEUE_CLASSES: dict[str, Any] = {
    "Queue": Queue,
    "AsyncQueue": AsyncQueue,
    "ShardedQueue": ShardedQueue,
    "AsyncShardedQueue": AsyncShardedQueue,
}


def maker(kind: str, port: int) -> QueueMaker:
    """``make(name, **settings)`` for the class named ``kind`` (a sharded one with 3 shards)."""

    def make(name: Any, **settings: Any) -> Any:
        client = async_client(port) if kind.startswith("Async") else sync_client(port)
        shards = (3,) if "Sharded" in kind else ()
        return QUEUE_CLASSES[kind](client, name, *shards, **settings)

    return make


@pytest.fixture(params=sorted(QUEUE_CLASSES))
def make(request: pytest.FixtureRequest, listener: Listener) -> Iterator[QueueMaker]:
    """Each of the four queue classes; afterwards, checks that nothing connected."""
    yield maker(request.param, listener.port)
    assert listener.connections() == 0, "making a queue connected to Redis"


def test_good_settings_make_a_queue_without_connecting(make: QueueMaker) -> None:
    make(
        "q",
        prefix="app:jobs",
        defaults=JobOptions(priority=5, jitter=0.0),
        retention=Retention(max_completed=0, max_dead=10**9, max_cancelled=7, trim_batch=1000),
        max_payload_bytes=LIMIT,
    )
    make("q", max_payload_bytes=1)


def test_the_listener_sees_a_connection(listener: Listener) -> None:
    client = redis.Redis(port=listener.port, socket_timeout=0.2, retry=Retry(NoBackoff(), 0))
    with pytest.raises(redis.TimeoutError):  # accepted by the kernel, never answered
        client.ping()
    client.close()
    assert listener.connections() == 1


def test_the_payload_limit_is_redis_s_largest_string() -> None:
    assert getattr(client_module, "MAX_PAYLOAD_BYTES_LIMIT", None) == LIMIT


@pytest.mark.parametrize(
    "value",
    ["1MB", None, math.nan, math.inf, -math.inf, True, False, 0, -1, 1.0, 1024.5,
     LIMIT + 1, 2**64, b"1024"],
    ids=repr,
)  # fmt: skip
def test_a_bad_max_payload_bytes_is_refused(make: QueueMaker, value: Any) -> None:
    with pytest.raises(ConfigError, match=r"max_payload_bytes must be an int in 1\.\.536870912"):
        make("q", max_payload_bytes=value)


@pytest.mark.parametrize("value", ["", "a{b}", "p x", "x" * 65, None, 5, b"p"], ids=repr)
def test_a_bad_prefix_is_refused(make: QueueMaker, value: Any) -> None:
    with pytest.raises(ConfigError, match="invalid key prefix"):
        make("q", prefix=value)


@pytest.mark.parametrize("value", ["", "a{b}", "a}b", "q q", "x" * 65, None, 7], ids=repr)
def test_a_bad_name_is_refused(make: QueueMaker, value: Any) -> None:
    with pytest.raises(ConfigError, match="invalid queue name"):
        make(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("fast", "defaults must be a JobOptions, not 'fast'"),
        ({"priority": 1}, "defaults must be a JobOptions"),
        (JobOptions(priority=1001), r"defaults: priority must be an integer in -1000\.\.1000"),
        (JobOptions(priority=True), "defaults: priority must be an integer"),
        (JobOptions(delay_ms=-1), r"defaults: delay_ms must be an integer in 0\.\."),
        (JobOptions(lease_ms=math.inf), "defaults: lease_ms must be an integer"),  # type: ignore[arg-type]
        (JobOptions(max_attempts=0), r"defaults: max_attempts must be an integer in 1\.\.1000"),
        (JobOptions(max_attempts="3"), "defaults: max_attempts must be an integer"),  # type: ignore[arg-type]
        (JobOptions(jitter=math.nan), r"defaults: jitter must be a number in 0\.0\.\.1\.0"),
        (JobOptions(jitter=math.inf), "defaults: jitter must be a number"),
        (JobOptions(run_at_ms=0), r"defaults: run_at_ms must be an integer in 1\.\."),
    ],
    ids=repr,
)  # fmt: skip
def test_bad_defaults_are_refused(make: QueueMaker, value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make("q", defaults=value)


@pytest.mark.parametrize("value", ["strict", {"max_completed": 1}, 5], ids=repr)
def test_a_retention_that_is_not_one_is_refused(make: QueueMaker, value: Any) -> None:
    with pytest.raises(ConfigError, match="retention must be a Retention"):
        make("q", retention=value)


RETENTION_FIELDS = {
    "max_completed": 10**9,
    "max_dead": 10**9,
    "max_cancelled": 10**9,
    "trim_batch": 1000,
}


@pytest.mark.parametrize("field", sorted(RETENTION_FIELDS))
@pytest.mark.parametrize(
    "value", ["1MB", None, math.nan, math.inf, True, False, -1, 1.0, "over"], ids=repr
)
def test_a_bad_retention_field_is_refused_when_made(field: str, value: Any) -> None:
    high = RETENTION_FIELDS[field]
    bad = high + 1 if value == "over" else value
    with pytest.raises(ConfigError, match=rf"Retention\.{field} must be an int in 0\.\.{high},"):
        Retention(**{field: bad})


@pytest.mark.parametrize("field", sorted(RETENTION_FIELDS))
def test_retention_fields_take_their_whole_range(field: str) -> None:
    assert getattr(Retention(**{field: 0}), field) == 0
    assert getattr(Retention(**{field: RETENTION_FIELDS[field]}), field) == RETENTION_FIELDS[field]
