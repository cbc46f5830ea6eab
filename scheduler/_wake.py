"""The idle wait of a worker: a blocking pop on the queue's wake LIST, on a connection of its
own, on a single Redis or on the cluster node that owns the queue's slot.

* The connection never retries and has no socket timeout (BLPOP has its own): a blocking
  command is never re-sent after a reconnect. A failed wait returns to the worker, which claims
  again first.
* On a cluster the connection goes to the primary that owns the wake key's slot, as the cluster
  client's slot map says. A ``MOVED`` or ``ASK`` reply (the slot moved, or is moving) or
  ``TRYAGAIN`` drops that connection and ends the wait after a short pause; the worker's next
  claim goes through the cluster client, which follows the redirection and updates its map, so
  the next wait goes to the new owner. The pop is not re-sent blindly.
* Several wake keys (the shards of a :class:`~scheduler.sharded.ShardedQueue`) are popped in one
  ``BLPOP`` on a single Redis; on a cluster their slots differ, so each wait pops one of them in
  turn, for at most :data:`SHARDED_WAIT_S`, and the worker claims across all shards in between.
* :meth:`WakeWaiter.unblock` (the thread worker's stop) sends nothing to Redis: it shuts down
  the waiting connection's socket locally, so it needs no ``CLIENT UNBLOCK`` (``@admin``) and
  works for a least-privilege ACL user and on any cluster node alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from redis.backoff import NoBackoff
from redis.exceptions import AskError, MovedError, TryAgainError
from redis.retry import Retry

from ._worker_core import WAIT_MARGIN_S, blocking_connection_kwargs
from .connection import is_cluster

SHARDED_WAIT_S = 0.2
"""On a cluster, the longest one wait on one shard's wake key lasts."""

REDIRECT_PAUSE_S = 0.05
"""The pause after a redirection, so a slot being migrated does not make the worker spin."""

_CLUSTER_ONLY = ("redis_connect_func", "oss_cluster_maint_notifications_handler")

Redirected = (MovedError, AskError, TryAgainError)
"""The replies that mean the wake key's slot is elsewhere (or moving) right now."""


def _node_kwargs(
    kwargs: dict[str, Any], no_retry: Any, socket_timeout: float | None = None
) -> dict[str, Any]:
    plain = {k: v for k, v in kwargs.items() if k not in _CLUSTER_ONLY}
    return blocking_connection_kwargs(plain, no_retry, socket_timeout)


class _Rotation:
    """Which wake key(s) the next wait pops, and for how long."""

    def __init__(self, keys: Sequence[str], cluster: bool) -> None:
        if not keys:
            raise ValueError("a waiter needs at least one wake key")
        self.keys = list(keys)
        self.cluster = cluster
        self._next = 0

    def take(self, timeout: float) -> tuple[list[str], float]:
        if not self.cluster or len(self.keys) == 1:
            return self.keys, timeout
        key = self.keys[self._next % len(self.keys)]
        self._next += 1
        return [key], min(timeout, SHARDED_WAIT_S)


class WakeWaiter:
    """Blocking waits for work, for the thread worker (see the module docstring).

    How :meth:`unblock` ends a wait from another thread, without a Redis command::

        claimer thread (wait)                       stopping thread (unblock)
        ---------------------                       -------------------------
        lock: ended? no -> go on
                                                    lock: ended = True;
                                                          shutdown(waiting socket)
        BLPOP sent, or being sent, or blocking
        -> the send fails, or the read sees EOF:
           ConnectionError, ended -> return

    A shut-down socket stays shut down, so whichever step the claimer is at (about to send,
    sent but not yet blocking on the server, blocking), its BLPOP ends at once; one that has not
    passed the check does not start. The connection never retries, so the BLPOP is not re-sent
    on a new connection; the dead connection is dropped, and a later wait (after a connection
    error, not after unblock) connects afresh.
    """

    def __init__(self, client: Any, keys: Sequence[str], max_wait_s: float = 60.0) -> None:
        self.client = client
        self._rotation = _Rotation(keys, is_cluster(client))
        # A wait lasts at most max_wait_s; a reply later than that plus a margin is lost.
        self._socket_timeout = max_wait_s + WAIT_MARGIN_S
        self._lock = threading.Lock()
        self._conn: redis.Redis | None = None
        self._ended = False  # unblock() was called: no wait starts any more
        self._pause = threading.Event()  # never set: an interruptible sleep

    def _connection(self, key: str) -> redis.Redis:
        if self._conn is not None:
            return self._conn
        no_retry = Retry(NoBackoff(), 0)
        if is_cluster(self.client):
            base = self.client.get_redis_connection(self.client.get_node_from_key(key))
        else:
            base = self.client
        pool = base.connection_pool
        conn = redis.Redis(
            connection_pool=redis.ConnectionPool(
                connection_class=pool.connection_class,
                **_node_kwargs(pool.connection_kwargs, no_retry, self._socket_timeout),
            ),
            single_connection_client=True,  # one connection, made now: the socket unblock() shuts
        )
        with self._lock:
            self._conn = conn
        return conn

    def _drop(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            conn.connection_pool.disconnect()  # close() only hands the connection back

    def wait(self, timeout: float) -> None:
        """Block until a wake token arrives on a key or ``timeout`` passes, or :meth:`unblock`
        ends the wait. Connection errors pass through (the connection is dropped first); a
        redirection ends the wait early."""
        keys, timeout = self._rotation.take(timeout)
        try:
            if self._ended:
                return
            conn = self._connection(keys[0])
            with self._lock:
                if self._ended:
                    return
            conn.blpop(keys, timeout=max(timeout, 0.01))
        except Redirected:
            self._drop()
            self._pause.wait(min(timeout, REDIRECT_PAUSE_S))
        except redis.RedisError:
            self._drop()
            if not self._ended:  # else unblock() shut the socket down: the wait ended as asked
                raise

    def unblock(self) -> None:
        """End a wait in progress at once, and any later one before it starts. No Redis command
        is sent (``CLIENT UNBLOCK`` needs ``@admin``): the waiting connection's socket is shut
        down here, in the calling thread, so its blocked read returns (see the class
        docstring). Works the same on a Redis Cluster node."""
        with self._lock:
            self._ended = True
            conn = self._conn
            sock = None if conn is None or conn.connection is None else conn.connection._sock
            if sock is not None:
                with contextlib.suppress(OSError):  # closed already by a failed wait
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Close the waiting connection."""
        self._drop()


class AsyncWakeWaiter:
    """Blocking waits for work, for the asyncio worker: the same routing as :class:`WakeWaiter`;
    a wait is ended by cancelling it (which closes its connection)."""

    def __init__(self, client: Any, keys: Sequence[str]) -> None:
        self.client = client
        self._rotation = _Rotation(keys, is_cluster(client))
        self._conn: redis.asyncio.Redis | None = None

    def _connection(self, key: str) -> redis.asyncio.Redis:
        if self._conn is not None:
            return self._conn
        no_retry = redis.asyncio.retry.Retry(NoBackoff(), 0)
        if is_cluster(self.client):
            node = self.client.get_node_from_key(key)
            kwargs = {**node.connection_kwargs, "host": node.host, "port": node.port}
            connection_class = node.connection_class
        else:
            kwargs = self.client.connection_pool.connection_kwargs
            connection_class = self.client.connection_pool.connection_class
        self._conn = redis.asyncio.Redis(
            connection_pool=redis.asyncio.ConnectionPool(
                connection_class=connection_class, **_node_kwargs(kwargs, no_retry)
            )
        )
        return self._conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.aclose()
            await conn.connection_pool.disconnect()

    async def wait(self, timeout: float) -> None:
        """Block until a wake token arrives or ``timeout`` passes; see :meth:`WakeWaiter.wait`."""
        keys, timeout = self._rotation.take(timeout)
        try:
            await self._connection(keys[0]).blpop(keys, timeout=max(timeout, 0.01))
        except Redirected:
            await self._drop()
            await asyncio.sleep(min(timeout, REDIRECT_PAUSE_S))
        except (redis.ConnectionError, redis.TimeoutError):
            await self._drop()
            raise

    async def aclose(self) -> None:
        """Close the waiting connection."""
        await self._drop()
