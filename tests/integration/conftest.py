"""Fixtures shared by the integration tests, on top of those in :mod:`tests.conftest`.

None is autouse: a file that wants every test on a pinned clock says so with
``pytestmark = pytest.mark.usefixtures("pinned_clock")``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from scheduler import Queue
from scheduler._local_redis import free_port
from scheduler.testing import pin_clock
from tests.integration.helpers import QUEUE_NAME, T0

ON_BOTH_DEPLOYMENTS = frozenset(
    f"test_{name}"
    for name in (
        "enqueue", "claim", "complete", "fail", "heartbeat", "release", "reap", "cancel",
        "requeue", "purge", "inspect", "stats", "noscript", "wake",
    )
)  # fmt: skip
"""The per-script test modules, which run on a single Redis and on the session's cluster."""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test of :data:`ON_BOTH_DEPLOYMENTS` that uses Redis twice: ``single`` and
    ``cluster`` (the ``deployment`` fixture picks what ``r`` and so ``q`` are)."""
    module = metafunc.module.__name__.rpartition(".")[2]
    if module in ON_BOTH_DEPLOYMENTS and "r" in metafunc.fixturenames:
        metafunc.parametrize("deployment", ["single", "cluster"], indirect=True)


@pytest.fixture
def pinned_clock(r: redis.Redis) -> int:
    """Pin the ``test`` queue's clock at :data:`~tests.integration.helpers.T0` so times in
    replies and records are exact; returns that instant."""
    pin_clock(r, QUEUE_NAME, T0)
    return T0


@pytest.fixture
def unreachable_queue() -> Iterator[Queue]:
    """A queue ``test`` on a port nothing listens on: any command sent fails to connect (with
    ``redis.ConnectionError``, at once), so a ValidationError it raises proves nothing was
    sent."""
    client = redis.Redis(
        host="127.0.0.1", port=free_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    yield Queue(client, QUEUE_NAME)
    client.close()
