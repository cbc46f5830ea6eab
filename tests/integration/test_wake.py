"""Idle workers wait on the queue's wake LIST instead of polling: every path that makes a job
claimable pushes a token, and an empty claim says when to look again. A wait in progress ends
at once when :meth:`WakeWaiter.unblock` is called, with no Redis command (so a user without
``@admin`` can stop an idle worker), whatever step the wait is at; a wait after a lost
connection connects again."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.cluster

from scheduler import JobOptions, JobSpec, Queue
from scheduler._wake import WakeWaiter
from tests.integration.helpers import T0, move_clock


def wake_tokens(r: redis.Redis, q: Queue) -> int:
    """How many wake tokens wait in ``q``'s wake LIST."""
    return int(r.llen(q.ops.keys.key("wake")))


def test_enqueue_pushes_one_token_per_ready_job_up_to_the_cap(q: Queue, r: redis.Redis) -> None:
    q.enqueue("x")
    assert wake_tokens(r, q) == 1
    q.enqueue_many([JobSpec(i) for i in range(100)])
    assert wake_tokens(r, q) == 64
    r.delete(q.ops.keys.key("wake"))
    q.enqueue("later", options=JobOptions(delay_ms=1000))
    assert wake_tokens(r, q) == 0


@pytest.mark.usefixtures("pinned_clock")
def test_an_empty_claim_names_the_next_due_job_or_lease_deadline(q: Queue, r: redis.Redis) -> None:
    assert q.claim("w").next_ms is None
    q.enqueue("later", options=JobOptions(delay_ms=5000))
    assert q.claim("w").next_ms == T0 + 5000
    q.enqueue("now", options=JobOptions(lease_ms=2000))
    assert [j.payload for j in q.claim("w").jobs] == ["now"]
    assert q.claim("w").next_ms == T0 + 2000


@pytest.mark.usefixtures("pinned_clock")
def test_promotion_and_reaping_wake_workers(q: Queue, r: redis.Redis) -> None:
    q.enqueue("later", options=JobOptions(delay_ms=1000, lease_ms=1000, max_attempts=2))
    r.delete(q.ops.keys.key("wake"))
    move_clock(r, 1000)
    assert q.reap().promoted == 1
    assert wake_tokens(r, q) == 1
    q.claim("w")
    r.delete(q.ops.keys.key("wake"))
    move_clock(r, 1000)
    assert q.reap().requeued == 1
    assert wake_tokens(r, q) == 1


# -- WakeWaiter.unblock: a wait ends at once, with no Redis command --------------------------------

DEADLINE_S = 10.0
QUICK_S = 0.5
"""How soon an unblocked wait must end (the waits here are 30 s long)."""


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = DEADLINE_S) -> None:
    """Poll ``check`` until it holds, failing after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        pause.wait(0.01)


def node_of(r: Any, key: str) -> redis.Redis:
    """The client of the server that holds ``key`` (``r`` itself on a single Redis)."""
    if isinstance(r, redis.cluster.RedisCluster):
        node: redis.Redis = r.get_redis_connection(r.get_node_from_key(key))
        return node
    return r  # type: ignore[no-any-return]


def calls(node: redis.Redis, command: str) -> int:
    """How many times ``command`` (``blpop``, ``client|unblock``) ran on ``node``."""
    stats: dict[str, Any] = node.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def clients(node: redis.Redis, field: str) -> int:
    """``connected_clients`` or ``blocked_clients`` of ``node``."""
    return int(node.info("clients")[field])


class Waiting:
    """``waiter.wait(timeout_s)`` on a thread of its own, and the error it raised, if any."""

    def __init__(self, waiter: WakeWaiter, timeout_s: float) -> None:
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(waiter, timeout_s), daemon=True)
        self.thread.start()

    def _run(self, waiter: WakeWaiter, timeout_s: float) -> None:
        try:
            waiter.wait(timeout_s)
        except BaseException as exc:
            self.error = exc

    def ended_within(self, seconds: float) -> bool:
        """Join the thread for at most ``seconds``; True if the wait ended."""
        self.thread.join(seconds)
        return not self.thread.is_alive()


def test_unblock_ends_a_blocked_wait_at_once_without_a_redis_command(
    q: Queue, r: redis.Redis
) -> None:
    key = q.ops.keys.key("wake")
    node = node_of(r, key)
    connected, blocked = clients(node, "connected_clients"), clients(node, "blocked_clients")
    unblocks = calls(node, "client|unblock")
    waiter = WakeWaiter(r, [key], max_wait_s=30)
    waiting = Waiting(waiter, 30)
    wait_until(lambda: clients(node, "blocked_clients") == blocked + 1, "the wait blocks")
    began = time.monotonic()
    waiter.unblock()
    assert waiting.ended_within(DEADLINE_S)
    assert time.monotonic() - began < QUICK_S
    assert waiting.error is None  # an unblocked wait returns; it does not raise
    assert calls(node, "client|unblock") == unblocks
    wait_until(
        lambda: clients(node, "connected_clients") == connected, "the server drops the connection"
    )
    waiter.close()


def test_a_wait_after_unblock_does_not_start(q: Queue, r: redis.Redis) -> None:
    key = q.ops.keys.key("wake")
    node = node_of(r, key)
    blpops = calls(node, "blpop")
    waiter = WakeWaiter(r, [key], max_wait_s=30)
    waiter.unblock()
    began = time.monotonic()
    waiter.wait(30)
    assert time.monotonic() - began < QUICK_S
    assert calls(node, "blpop") == blpops
    waiter.close()


@pytest.mark.parametrize(
    "step",
    ["send_packed_command", "read_response"],
    ids=["before-the-blpop-is-sent", "sent-but-not-yet-read"],
)
def test_unblock_ends_a_wait_that_has_not_blocked_yet(
    q: Queue, r: redis.Redis, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """``unblock`` runs (from another thread) just before the BLPOP is written to the socket,
    or just after it was written and before its reply is read: the wait still ends at once."""
    key = q.ops.keys.key("wake")
    waiter = WakeWaiter(r, [key], max_wait_s=30)
    make_connection = waiter._connection

    def connection(wake_key: str) -> redis.Redis:
        conn = make_connection(wake_key)
        original = getattr(conn.connection, step)

        def unblock_then(*args: Any, **kwargs: Any) -> Any:
            stopper = threading.Thread(target=waiter.unblock)
            stopper.start()
            stopper.join(DEADLINE_S)
            return original(*args, **kwargs)

        setattr(conn.connection, step, unblock_then)
        return conn

    monkeypatch.setattr(waiter, "_connection", connection)
    waiting = Waiting(waiter, 30)
    assert waiting.ended_within(QUICK_S), "the wait did not end at once"
    assert waiting.error is None
    waiter.close()


def test_a_wait_after_a_lost_connection_reconnects(q: Queue, r: redis.Redis) -> None:
    key = q.ops.keys.key("wake")
    node = node_of(r, key)
    waiter = WakeWaiter(r, [key], max_wait_s=30)
    first = Waiting(waiter, 30)
    wait_until(lambda: waiting_client(node) is not None, "the wait blocks")
    node.client_kill_filter(_id=waiting_client(node))
    assert first.ended_within(DEADLINE_S)
    assert isinstance(first.error, redis.ConnectionError)  # never re-sent on its own
    second = Waiting(waiter, 30)
    wait_until(lambda: waiting_client(node) is not None, "the next wait blocks again")
    r.lpush(key, "1")
    assert second.ended_within(DEADLINE_S) and second.error is None
    waiter.close()


def waiting_client(node: redis.Redis) -> str | None:
    """The id of the client blocked in BLPOP on ``node``, if one is."""
    for client in node.client_list():
        if client.get("cmd") == "blpop" and "b" in client.get("flags", ""):
            return str(client["id"])
    return None
