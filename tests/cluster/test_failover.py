"""A primary with a replica is killed (SIGKILL) while a producer and workers run on its queue;
the replica takes over. Redis replication is asynchronous, so what the primary acknowledged in
its last moments may be missing on the replica: an enqueue acknowledged there can be lost, and
a completion acknowledged there can be undone, so the job runs again once its lease expires.
The test does not assert zero loss: it asserts that the workers carry on (every job enqueued
after the failover runs, once), that no job runs that was never enqueued, and it reports how
many jobs were lost or run twice (``-s`` shows the line; README "Scaling out" has figures).
Runs on a cluster of its own, with ``cluster-node-timeout`` 1000 ms."""

from __future__ import annotations

import time
from collections.abc import Callable

from scheduler import JobOptions, Queue, State
from scheduler._local_cluster import LocalCluster
from scheduler.connection import connect
from tests.cluster.history import History, Producer, running_workers, wait_for

LEASE_MS = 2000


def test_workers_carry_on_when_a_primary_fails_over_to_its_replica(
    own_cluster: Callable[..., LocalCluster], record_property: Callable[[str, object], None]
) -> None:
    cluster = own_cluster(3, node_timeout_ms=1000)
    client = connect(cluster.startup_nodes, socket_timeout=5)
    queue = Queue(client, "failover")
    slot = client.keyslot(queue.ops.keys.key("meta"))
    primary = cluster.owner_of(slot)
    replica = cluster.add_replica(primary)
    history = History()
    options = JobOptions(lease_ms=LEASE_MS)
    queues = [Queue(connect(cluster.startup_nodes, socket_timeout=5), "failover") for _ in "ab"]
    with running_workers(queues, history, concurrency=4, max_idle_s=0.5):
        before = Producer(queues[0], history, "before", options=options)
        with before:
            wait_for(lambda: len(history.ran()) >= 300, 30, "the first jobs to run")
            killed_at = time.monotonic()
            cluster.kill(primary)
            wait_for(lambda: replica in cluster.primaries(), 30, "the replica to take over")
            cluster.wait_ok(30)
            promoted_s = time.monotonic() - killed_at
        assert cluster.owner_of(slot) is replica
        after = Producer(queues[1], history, "after", limit=300, options=options)
        with after:
            wait_for(lambda: len(history.enqueued) >= len(before_ids(history)) + 300, 30, "after")
        after_ids = {i for i in history.enqueued if i.startswith("after-")}
        wait_for(lambda: after_ids <= history.ran(), 30, "the jobs enqueued after the failover")
        wait_for(lambda: settled(queue), 3 * LEASE_MS / 1000 + 10, "the queue to settle")
    lost = history.enqueued - history.ran()
    repeated = history.repeated()
    assert history.unexpected() == set()
    assert not any(i.startswith("after-") for i in repeated), "a job after the failover ran twice"
    report = (
        f"failover: {len(before_ids(history))} jobs enqueued before and during, 300 after; "
        f"replica promoted {promoted_s:.1f} s after the kill; lost {len(lost)}, "
        f"run twice {len(repeated)}; producer retries {before.errors}"
    )
    print(report)
    record_property("failover", report)
    for c in [client, *(q.client for q in queues)]:
        c.close()


def before_ids(history: History) -> set[str]:
    """The ids the first producer got acknowledged."""
    with history.lock:
        return {i for i in history.enqueued if i.startswith("before-")}


def settled(queue: Queue) -> bool:
    """Nothing waiting, delayed or active (expired leases are reaped by the claims)."""
    queue.reap()
    counts = queue.stats().counts
    return counts[State.WAITING] + counts[State.DELAYED] + counts[State.ACTIVE] == 0
