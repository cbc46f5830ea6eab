"""A Redis restart in the middle of a run: the worker reconnects with backoff, does not hang on
its blocking wait, reloads the scripts (NOSCRIPT after a restart) and every job completes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis

from scheduler import Job, JobSpec, Queue, State
from scheduler._local_redis import LocalRedis
from scheduler.worker import JobContext, Worker

DEADLINE_S = 30.0


@pytest.fixture
def durable_redis() -> Iterator[LocalRedis]:
    """A server of this test's own, with AOF on so that a SIGKILL loses nothing."""
    server = LocalRedis(extra_args=["--appendonly", "yes", "--appendfsync", "always"]).start()
    yield server
    server.stop()


def test_the_worker_carries_on_after_redis_is_killed_and_restarted(
    durable_redis: LocalRedis,
) -> None:
    client = redis.Redis.from_url(durable_redis.url, socket_timeout=2, socket_connect_timeout=1)
    q = Queue(client, "restart")
    ids = [e.id for e in q.enqueue_many([JobSpec(n) for n in range(300)])]
    halfway, pause = threading.Event(), threading.Event()
    done_count = [0]

    def handler(job: Job, context: JobContext) -> int:
        done_count[0] += 1
        if done_count[0] == 100:
            halfway.set()
        pause.wait(0.002)
        return int(job.payload)

    worker = Worker(q, handler, concurrency=4, lease_ms=2000, max_idle_s=1)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert halfway.wait(DEADLINE_S)
        durable_redis.crash_and_restart()
        q.enqueue_many([JobSpec(n) for n in range(300, 320)])  # after the restart, too
        deadline = time.monotonic() + DEADLINE_S
        while q.stats().counts[State.COMPLETED] < 320:
            assert time.monotonic() < deadline, f"only {q.stats().counts} after the restart"
            pause.wait(0.05)
    finally:
        worker.stop()
        thread.join(DEADLINE_S)
    assert not thread.is_alive()
    assert all(q.inspect(job_id).state is State.COMPLETED for job_id in ids)
    client.close()
