"""Queues on a three-primary Redis Cluster: one queue per slot, many queues spread over every
primary, sharded queues, both workers, and the connection choices. The session's cluster is
shared (every primary flushed before each test)."""

from __future__ import annotations

import asyncio
import threading

import pytest
import redis
import redis.cluster

from scheduler import ConfigError, Job, JobSpec, Queue, State, check_server
from scheduler._local_cluster import LocalCluster
from scheduler.aio_worker import AsyncWorker
from scheduler.connection import connect, connect_async, is_cluster
from scheduler.sharded import AsyncShardedQueue, ShardedQueue
from scheduler.worker import JobContext
from tests.cluster.history import History, running_workers, wait_for

Cluster = redis.cluster.RedisCluster


def owners(client: Cluster, queues: list[Queue]) -> set[str]:
    """The primaries (``host:port``) that hold the given queues."""
    return {client.get_node_from_key(q.ops.keys.key("meta")).name for q in queues}


def test_every_connection_choice_gives_a_cluster_client(cluster: LocalCluster) -> None:
    clients = [
        connect(cluster.url),
        connect(cluster.startup_nodes),
        connect([f"127.0.0.1:{port}" for _, port in cluster.startup_nodes]),
    ]
    for client in clients:
        assert is_cluster(client)
        assert Queue(client, "c").enqueue("x").created
        client.close()
    single = connect(cluster.url.replace("cluster=yes", "cluster=no"))
    assert not is_cluster(single)
    single.close()


def test_a_cluster_client_that_decodes_replies_is_refused(cluster: LocalCluster) -> None:
    client = connect(cluster.url, decode_responses=True)
    with pytest.raises(ConfigError, match="decode_responses"):
        Queue(client, "q")
    client.close()


def test_many_queues_spread_over_every_primary_without_crossslot(cluster_client: Cluster) -> None:
    queues = [Queue(cluster_client, f"q{i}") for i in range(24)]
    assert len(owners(cluster_client, queues)) == 3
    for q in queues:
        q.enqueue_many([JobSpec(n) for n in range(5)])
        jobs = q.claim("w", count=5).jobs
        assert len(jobs) == 5
        assert all(s.status.value == "ok" for s in q.complete_many([(j, None) for j in jobs]))
        assert q.stats().counts[State.COMPLETED] == 5
    sizes = [node.redis_connection.dbsize() for node in cluster_client.get_primaries()]
    assert all(size > 0 for size in sizes)


def test_check_server_names_each_primary(cluster_client: Cluster) -> None:
    warnings = check_server(cluster_client)
    named = {text.split(": ", 1)[0] for text in warnings}
    assert named == {node.name for node in cluster_client.get_primaries()}


def test_a_sharded_queue_spreads_over_the_primaries_and_adds_up(cluster_client: Cluster) -> None:
    sq = ShardedQueue(cluster_client, "orders", 6)
    assert [s.name for s in sq.shards] == [f"orders:{i}" for i in range(6)]
    assert len(owners(cluster_client, sq.shards)) == 3
    for n in range(60):
        sq.enqueue(n)
    assert [s.stats().counts[State.WAITING] for s in sq.shards] == [10] * 6
    assert sq.stats().counts[State.WAITING] == 60
    keyed = [sq.enqueue(n, key="customer-7").id for n in range(5)]
    home = sq.shards[sq.router.hashed("customer-7")]
    assert all(home.inspect(job_id).state is State.WAITING for job_id in keyed)
    assert sq.inspect(keyed[0]).id == keyed[0]
    assert sq.cancel(keyed[1]) is True
    assert sq.stats().counts[State.CANCELLED] == 1


def test_a_thread_worker_drains_a_sharded_queue_exactly_once(cluster_client: Cluster) -> None:
    sq = ShardedQueue(cluster_client, "drain", 4)
    history = History()
    with running_workers([sq], history, concurrency=4, max_idle_s=0.5):
        for start in range(0, 400, 100):
            done = sq.enqueue_many([JobSpec(n) for n in range(start, start + 100)])
            history.enqueued.update(e.id for e in done)
        wait_for(lambda: history.ran() == history.enqueued, 30, "every job to run")
    assert not history.repeated() and not history.unexpected()
    assert sq.stats().counts[State.COMPLETED] == 400


def test_an_idle_worker_on_a_cluster_wakes_for_new_work_and_stops_at_once(
    cluster_client: Cluster,
) -> None:
    q = Queue(cluster_client, "idle")
    history = History()
    with running_workers([q], history, concurrency=2, max_idle_s=30):
        wait_for(lambda: q.stats().counts[State.WAITING] == 0, 5, "the worker to start")
        pause = threading.Event()
        pause.wait(0.3)  # let it block on the wake list of the queue's primary
        history.enqueued.add(q.enqueue("x").id)
        wait_for(lambda: history.ran() == history.enqueued, 5, "the blocked worker to wake")
    # leaving the block stopped the worker well within the 30 s idle wait (its socket shut down)


def test_the_asyncio_worker_drains_a_sharded_queue_on_the_cluster(cluster: LocalCluster) -> None:
    cluster.flush()

    async def main() -> list[str]:
        client = connect_async(cluster.url)
        sq = AsyncShardedQueue(client, "aio", 3)
        ran: list[str] = []

        async def handler(job: Job, context: JobContext) -> None:
            ran.append(job.id)

        worker = AsyncWorker(sq, handler, concurrency=16, max_idle_s=0.5)
        task = asyncio.create_task(worker.run())
        ids = [(await sq.enqueue(n, key=f"k{n % 5}")).id for n in range(150)]
        async with asyncio.timeout(30):
            while len(ran) < len(ids):
                await asyncio.sleep(0.02)
        worker.stop()
        await asyncio.wait_for(task, 30)
        assert (await sq.stats()).counts[State.COMPLETED] == 150
        await client.aclose()
        assert sorted(ran) == sorted(ids)
        return ran

    assert len(asyncio.run(main())) == 150


def test_a_single_redis_cannot_be_asked_for_a_cluster_by_mistake(redis_url: str) -> None:
    client = connect(redis_url)
    assert isinstance(client, redis.Redis)
    client.close()
    with pytest.raises(ConfigError):
        connect(redis_url + "?cluster=maybe")
