"""Fixtures: a real Redis for every test, and queues on it.

Where the Redis comes from, in order:

1. ``REDIS_URL``, if set (the suite flushes that database before each test: give it one you own);
2. else ``redis-server`` from PATH, started on a free loopback port in a temporary folder;
3. else a container through testcontainers, when a Docker engine answers;
4. else the run fails, saying how to get Redis.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from scheduler import Queue
from scheduler._local_redis import INSTALL_HINT, LocalRedis
from scheduler.testing import use_test_build
from tests.cluster_fixture import cluster, cluster_client, own_cluster

use_test_build()  # every queue the tests make can run on a test clock (scheduler.testing)

__all__ = ["cluster", "cluster_client", "own_cluster"]  # fixtures shared with every test

REDIS_IMAGE = "redis:7.2-alpine"


def _docker_answers() -> bool:
    try:
        import docker  # testcontainers depends on it

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of the Redis this run tests against (see the module docstring)."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    if shutil.which("redis-server"):
        with LocalRedis() as server:
            yield server.url
        return
    if _docker_answers():
        from testcontainers.redis import RedisContainer

        with RedisContainer(REDIS_IMAGE) as container:
            host = container.get_container_host_ip()
            port = container.get_exposed_port(6379)
            yield f"redis://{host}:{port}/0"
        return
    pytest.fail(f"No Redis to test against. {INSTALL_HINT}", pytrace=False)


@pytest.fixture
def deployment(request: pytest.FixtureRequest) -> str:
    """``single`` (one Redis) unless a test is parametrised with ``cluster`` (see
    ``tests/integration/conftest.py``, which runs the per-script tests on both)."""
    return str(getattr(request, "param", "single"))


@pytest.fixture
def r(request: pytest.FixtureRequest, deployment: str) -> Iterator[redis.Redis]:
    """A client on a clean database: flushed before the test, closed after it. With the
    ``cluster`` deployment, a ``RedisCluster`` client on the session's cluster, every primary
    flushed (it offers the same commands for keys of one slot)."""
    if deployment == "cluster":
        client: Any = request.getfixturevalue("cluster_client")
        yield client
        return
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"), socket_timeout=10)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def make_queue(r: redis.Redis) -> Callable[..., Queue]:
    """Build a :class:`Queue` on the test's clean database: ``make_queue("name", **options)``."""

    def build(name: str = "test", **kwargs: Any) -> Queue:
        return Queue(r, name, **kwargs)

    return build


@pytest.fixture
def q(make_queue: Callable[..., Queue]) -> Queue:
    """A queue named ``test`` with default settings on a clean database."""
    return make_queue()


def snapshot(client: redis.Redis) -> dict[bytes, Any]:
    """Every key of the database with its type and full contents, to compare before and after
    a refused call (state must be unchanged)."""
    state: dict[bytes, Any] = {}
    for key in sorted(client.scan_iter(count=1000)):
        kind = client.type(key)
        if kind == b"string":
            state[key] = ("string", client.get(key))
        elif kind == b"hash":
            state[key] = ("hash", client.hgetall(key))
        elif kind == b"zset":
            state[key] = ("zset", client.zrange(key, 0, -1, withscores=True))
        elif kind == b"list":
            state[key] = ("list", client.lrange(key, 0, -1))
        elif kind == b"set":
            state[key] = ("set", sorted(client.smembers(key)))
        else:
            state[key] = (kind, None)
    return state


@pytest.fixture
def db_snapshot(r: redis.Redis) -> Callable[[], dict[bytes, Any]]:
    """``db_snapshot()`` returns the whole database's contents (see :func:`snapshot`)."""
    return lambda: snapshot(r)
