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
* :meth:`WakeWaiter.unblock` (the thread worker's stop) sends ``CLIENT UNBLOCK`` to the node the
  waiting connection is on.
"""

from __future__ import annotations

import asyncio
import threading
import time
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

UNBLOCK_TRIES_S = 2.0
"""How long :meth:`WakeWaiter.unblock` keeps trying to end a wait that has not blocked yet."""

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
    """Blocking waits for work, for the thread worker (see the module docstring)."""

    def __init__(self, client: Any, keys: Sequence[str], max_wait_s: float = 60.0) -> None:
        self.client = client
        self._rotation = _Rotation(keys, is_cluster(client))
        # A wait lasts at most max_wait_s; a reply later than that plus a margin is lost.
        self._socket_timeout = max_wait_s + WAIT_MARGIN_S
        self._lock = threading.Lock()
        self._conn: redis.Redis | None = None
        self._node: Any = None  # the cluster node the connection is on
        self._conn_id: int | None = None
        self._blocking = False  # a BLPOP is on its way or in progress
        self._ended = False  # unblock() was called: no wait starts any more
        self._pause = threading.Event()  # never set: an interruptible sleep

    def _connection(self, key: str) -> redis.Redis:
        if self._conn is not None:
            return self._conn
        no_retry = Retry(NoBackoff(), 0)
        if is_cluster(self.client):
            node = self.client.get_node_from_key(key)
            base = self.client.get_redis_connection(node)
        else:
            node, base = None, self.client
        pool = base.connection_pool
        conn = redis.Redis(
            connection_pool=redis.ConnectionPool(
                connection_class=pool.connection_class,
                **_node_kwargs(pool.connection_kwargs, no_retry, self._socket_timeout),
            ),
            single_connection_client=True,  # one connection, whose CLIENT ID unblock() ends
        )
        conn_id = int(conn.client_id())
        with self._lock:
            self._conn, self._node, self._conn_id = conn, node, conn_id
        return conn

    def _drop(self) -> None:
        with self._lock:
            conn, self._conn, self._node, self._conn_id = self._conn, None, None, None
        if conn is not None:
            conn.close()

    def wait(self, timeout: float) -> None:
        """Block until a wake token arrives on a key or ``timeout`` passes. Connection errors
        pass through (the connection is dropped first); a redirection ends the wait early."""
        keys, timeout = self._rotation.take(timeout)
        try:
            conn = self._connection(keys[0])
            with self._lock:
                if self._ended:
                    return
                self._blocking = True
            try:
                conn.blpop(keys, timeout=max(timeout, 0.01))
            finally:
                with self._lock:
                    self._blocking = False
        except Redirected:
            self._drop()
            self._pause.wait(min(timeout, REDIRECT_PAUSE_S))
        except (redis.ConnectionError, redis.TimeoutError):
            self._drop()
            raise

    def unblock(self) -> None:
        """End a wait in progress at once, and any later one before it starts (``CLIENT
        UNBLOCK`` on the waiting connection's node). A BLPOP sent but not yet blocking on the
        server is not unblocked by that, so it is tried again until the wait ends (for at most
        :data:`UNBLOCK_TRIES_S`)."""
        deadline = time.monotonic() + UNBLOCK_TRIES_S
        while True:
            with self._lock:
                self._ended = True
                conn_id, node, blocking = self._conn_id, self._node, self._blocking
            if conn_id is None or not blocking:
                return
            if node is None:
                unblocked = self.client.client_unblock(conn_id)
            else:
                unblocked = self.client.execute_command(
                    "CLIENT UNBLOCK", conn_id, target_nodes=node
                )
            if unblocked or time.monotonic() >= deadline:
                return
            self._pause.wait(0.01)

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
