"""The Redis Cluster the tests run on: three local primaries, started once per session.

``cluster`` starts :class:`~scheduler._local_cluster.LocalCluster` (three ``redis-server``
processes with ``--cluster-enabled yes`` on free loopback ports whose bus ports are free too,
each in a temporary folder, joined with ``redis-cli --cluster create``, ready once every node
reports ``cluster_state:ok``) the first time a test asks for it, and kills every server by its
process id at the end of the session. Tests share it: ``cluster_client`` flushes every primary
before each test. Skipped, with the reason, when ``redis-server`` or ``redis-cli`` is missing.

The tests that move slots or kill a primary start clusters of their own (``own_cluster``), so
this one keeps its layout.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import pytest
import redis.cluster

from scheduler._local_cluster import CLUSTER_HINT, LocalCluster
from scheduler.connection import connect


def cluster_tools_missing() -> str | None:
    """Why a local cluster cannot start here, or None when it can."""
    missing = [tool for tool in ("redis-server", "redis-cli") if shutil.which(tool) is None]
    return f"{', '.join(missing)} not on PATH: {CLUSTER_HINT}" if missing else None


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    """A three-primary Redis Cluster shared by the whole session."""
    reason = cluster_tools_missing()
    if reason:
        pytest.skip(reason)
    with LocalCluster(3) as running:
        yield running


@pytest.fixture
def cluster_client(cluster: LocalCluster) -> Iterator[redis.cluster.RedisCluster]:
    """A cluster client on the shared cluster, every primary flushed before the test."""
    cluster.flush()
    client = connect(cluster.startup_nodes, socket_timeout=10)
    assert isinstance(client, redis.cluster.RedisCluster)
    yield client
    client.close()


@pytest.fixture
def own_cluster() -> Iterator[Callable[..., LocalCluster]]:
    """``own_cluster(primaries, node_timeout_ms=...)`` starts a cluster for one test alone
    (for tests that move slots or kill nodes); all are stopped after the test."""
    reason = cluster_tools_missing()
    if reason:
        pytest.skip(reason)
    started: list[LocalCluster] = []

    def start(primaries: int = 3, **kwargs: int) -> LocalCluster:
        running = LocalCluster(primaries, **kwargs).start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()
