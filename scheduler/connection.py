"""Connecting to a single Redis or to a Redis Cluster, chosen by the connection.

The same :class:`~scheduler.Queue`, :class:`~scheduler.aio.AsyncQueue` and workers run on both:
pass a ``redis.Redis`` or a ``redis.cluster.RedisCluster`` (asyncio: their ``redis.asyncio``
twins). :func:`connect` and :func:`connect_async` build either from

* a ``redis://`` URL: a single Redis, or a cluster when the URL carries ``cluster=yes`` (also
  ``true``/``1``) in its query, e.g. ``redis://10.0.0.5:7000/0?cluster=yes``;
* a list of startup nodes (``"host:port"`` strings or ``(host, port)`` pairs): a cluster.

Every key of a queue carries the queue's hash tag, so each script call goes to the one primary
that owns the queue's slot; redis-py routes EVALSHA by its first key, follows ``MOVED`` and
``ASK``, waits out ``TRYAGAIN``, and loads a script again after ``NOSCRIPT``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
import redis.exceptions

from .errors import ConfigError

CLUSTER_FLAG = "cluster"
_TRUE = {"yes", "true", "1", "on"}
_FALSE = {"no", "false", "0", "off"}

Target = str | Sequence[str | tuple[str, int]]
"""A URL, or the startup nodes of a cluster."""

SyncClient = redis.Redis | redis.cluster.RedisCluster
"""A synchronous client of either deployment."""

AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster
"""An asyncio client of either deployment."""


TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
)
"""Errors after which a worker repeats its call (every call is safe to repeat): a lost
connection or reply, and the cluster's ``TRYAGAIN`` (the slot is being migrated and the keys
are split for a moment) and ``CLUSTERDOWN`` (a failover in progress), which the server sends
instead of running the script."""


def is_cluster(client: Any) -> bool:
    """True for a Redis Cluster client (sync or asyncio)."""
    return isinstance(client, redis.cluster.RedisCluster | redis.asyncio.cluster.RedisCluster)


def connection_kwargs(client: Any) -> dict[str, Any]:
    """The settings the client's connections are made with (empty when unknown)."""
    if is_cluster(client):
        return dict(client.get_connection_kwargs() or {})
    pool = getattr(client, "connection_pool", None)
    return dict(getattr(pool, "connection_kwargs", {}) or {})


def split_cluster_flag(url: str) -> tuple[str, bool]:
    """``url`` without its ``cluster=`` query item, and whether that item asked for a cluster."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    flags = [value.lower() for key, value in query if key == CLUSTER_FLAG]
    for value in flags:
        if value not in _TRUE | _FALSE:
            raise ConfigError(f"cluster= in a Redis URL takes yes or no, not {value!r}")
    rest = urlencode([(key, value) for key, value in query if key != CLUSTER_FLAG])
    cluster = bool(flags) and flags[-1] in _TRUE
    return urlunsplit(parts._replace(query=rest)), cluster


def _startup_nodes(nodes: Sequence[str | tuple[str, int]]) -> list[tuple[str, int]]:
    found = []
    for node in nodes:
        if isinstance(node, str):
            host, sep, port = node.rpartition(":")
            if not sep or not port.isdigit():
                raise ConfigError(f"a startup node is 'host:port', not {node!r}")
            found.append((host or "127.0.0.1", int(port)))
        elif isinstance(node, tuple) and len(node) == 2:
            found.append((str(node[0]), int(node[1])))
        else:
            raise ConfigError(f"a startup node is 'host:port' or (host, port), not {node!r:.60}")
    if not found:
        raise ConfigError("a cluster needs at least one startup node")
    return found


def connect(target: Target, **kwargs: Any) -> SyncClient:
    """A synchronous client for ``target`` (see the module docstring); ``kwargs`` go to the
    redis-py constructor (socket timeouts and the like)."""
    if isinstance(target, str):
        url, cluster = split_cluster_flag(target)
        if cluster:
            return redis.cluster.RedisCluster.from_url(url, **kwargs)
        return redis.Redis.from_url(url, **kwargs)
    nodes = [
        redis.cluster.ClusterNode(h, p)  # type: ignore[no-untyped-call]
        for h, p in _startup_nodes(target)
    ]
    return redis.cluster.RedisCluster(startup_nodes=nodes, **kwargs)


def connect_async(target: Target, **kwargs: Any) -> AsyncClient:
    """An asyncio client for ``target``, as :func:`connect` builds a synchronous one."""
    if isinstance(target, str):
        url, cluster = split_cluster_flag(target)
        if cluster:
            return redis.asyncio.cluster.RedisCluster.from_url(url, **kwargs)
        return redis.asyncio.Redis.from_url(url, **kwargs)
    nodes = [redis.asyncio.cluster.ClusterNode(h, p) for h, p in _startup_nodes(target)]
    return redis.asyncio.cluster.RedisCluster(startup_nodes=nodes, **kwargs)
