"""The same behaviour from both workers (thread and asyncio), scenario by scenario, on a real
Redis: both are shells over one core, and these tests hold them to it.

* 1500 jobs at once: claims are clamped to 1000 and heartbeats go in chunks of 1000, and no
  lease expires;
* a result msgpack cannot encode, and a payload that cannot be decoded in the middle of a batch,
  fail their own job only;
* a lease lost mid-job cancels the job and discards its result;
* stopping: an idle worker within 0.5 s; with Redis down, within the grace period plus the
  hand-back bound; prefetched jobs come back with their attempt, running ones keep it counted.
"""

from __future__ import annotations

import time

import msgpack
import pytest
import redis

from scheduler import JobOptions, JobSpec, Queue, State
from scheduler._local_redis import LocalRedis
from scheduler._worker_core import HAND_BACK_S
from scheduler.testing import advance_clock
from tests.integration.worker_kinds import KINDS, RunningWorker, eventually, hold

pytestmark = pytest.mark.parametrize("kind", KINDS)


def states(q: Queue, ids: list[str]) -> list[State]:
    return [q.inspect(job_id).state for job_id in ids]


def completed(q: Queue, count: int) -> bool:
    return q.stats(active_limit=0).counts[State.COMPLETED] == count


def test_1500_at_once_claims_1000_at_most_and_heartbeats_in_chunks(
    kind: str, q: Queue, redis_url: str
) -> None:
    options = JobOptions(lease_ms=4500)  # a heartbeat every 1.5 s; every job outlives one
    ids = []
    for start in range(0, 3000, 1000):
        specs = [JobSpec(hold(2.2), options=options) for _ in range(start, start + 1000)]
        ids += [e.id for e in q.enqueue_many(specs)]
    worker = RunningWorker(kind, redis_url, concurrency=1500, prefetch=1500).start()
    try:
        eventually(lambda: completed(q, 3000), "3000 jobs completed", timeout_s=60)
    finally:
        worker.stop_and_join()
    assert worker.error is None
    claims, beats = worker.calls.sizes("claim"), worker.calls.sizes("heartbeat")
    assert max(claims) == 1000 and sum(claims) >= 3000
    assert max(beats) == 1000, "3000 leases held: heartbeats of 1000"
    assert len(beats) >= 3, beats
    assert {q.inspect(job_id).attempt for job_id in ids[::97]} == {1}, "no lease expired"


def test_a_result_that_cannot_be_encoded_fails_its_job_alone(
    kind: str, q: Queue, redis_url: str
) -> None:
    ids = [q.enqueue(p).id for p in ("before", {"do": "set"}, "after")]
    worker = RunningWorker(kind, redis_url, concurrency=3).start()
    try:
        eventually(lambda: q.inspect(ids[1]).state is State.DEAD, "the bad result dead-lettered")
        eventually(lambda: states(q, [ids[0], ids[2]]) == [State.COMPLETED] * 2, "the others")
        later = q.enqueue("later").id
        eventually(lambda: q.inspect(later).state is State.COMPLETED, "the worker goes on")
    finally:
        worker.stop_and_join()
    assert worker.error is None
    info = q.inspect(ids[1])
    assert info.attempt == 1, "not retried: the same code returns the same kind of value"
    assert info.error is not None and info.error.startswith("result could not be encoded: ")
    assert "TypeError" in info.error and info.error.endswith("(a set)")


def test_a_payload_that_cannot_be_decoded_fails_alone_without_running(
    kind: str, q: Queue, r: redis.Redis, redis_url: str
) -> None:
    ids = [e.id for e in q.enqueue_many([JobSpec(n) for n in range(5)])]
    poison = ids[2]
    raw = msgpack.packb(msgpack.ExtType(42, b"from another language"))
    r.hset(q.ops.keys.key("payload"), poison, raw)
    worker = RunningWorker(kind, redis_url, concurrency=5).start()
    try:
        eventually(lambda: q.inspect(poison).state is State.DEAD, "the poison dead-lettered")
        others = [i for i in ids if i != poison]
        eventually(lambda: states(q, others) == [State.COMPLETED] * 4, "its neighbours completed")
    finally:
        worker.stop_and_join()
    assert worker.error is None
    info = q.inspect(poison)
    assert info.error is not None and info.error.startswith("payload could not be decoded: ")
    assert info.raw_payload == raw, "the bytes stay for inspect"
    assert poison not in worker.behaviour.seen("start"), "the handler never ran for it"
    assert all(q.inspect(i).attempt == 1 for i in others)


def test_a_lease_lost_mid_job_cancels_it_and_discards_its_result(
    kind: str, q: Queue, r: redis.Redis, redis_url: str
) -> None:
    job_id = q.enqueue(hold(15), options=JobOptions(lease_ms=1000)).id
    worker = RunningWorker(kind, redis_url, concurrency=1, prefetch=0).start()
    try:
        eventually(lambda: job_id in worker.behaviour.seen("start"), "the job started")
        advance_clock(r, "test", 5000)  # past its deadline: the next heartbeat finds it lost
        stolen = q.claim("thief").jobs
        assert [j.id for j in stolen] == [job_id]
        eventually(lambda: job_id in worker.behaviour.seen("cancelled"), "the run was cancelled")
    finally:
        worker.stop_and_join()
    assert worker.error is None
    assert q.complete(stolen[0], "the thief's") is True
    assert q.inspect(job_id).result == "the thief's"


def test_stop_hands_back_prefetched_jobs_with_and_running_ones_without_their_attempt(
    kind: str, q: Queue, redis_url: str
) -> None:
    ids = [e.id for e in q.enqueue_many([JobSpec(hold(30)) for _ in range(3)])]
    worker = RunningWorker(kind, redis_url, concurrency=1, prefetch=2, grace_s=0.2).start()
    eventually(lambda: len(worker.behaviour.seen("start")) == 1, "one job running")
    eventually(lambda: q.stats().counts[State.ACTIVE] == 3, "two more prefetched")
    began = worker.behaviour.seen("start")[0]
    worker.stop_and_join()
    assert worker.error is None
    assert states(q, ids) == [State.WAITING] * 3
    attempts = {job_id: q.inspect(job_id).attempt for job_id in ids}
    assert attempts == {job_id: 1 if job_id == began else 0 for job_id in ids}


def test_stopping_an_idle_worker_takes_under_half_a_second(
    kind: str, q: Queue, redis_url: str
) -> None:
    worker = RunningWorker(kind, redis_url, max_idle_s=30).start()
    eventually(lambda: bool(worker.calls.sizes("claim")), "the first claim")
    time.sleep(0.3)  # blocked on the wake list by now
    took = worker.stop_and_join()
    assert worker.error is None
    print(f"\n{kind} worker, idle stop: {took * 1000:.0f} ms")
    assert took < 0.5


def test_stop_with_redis_down_returns_within_the_grace_and_the_hand_back_bound(kind: str) -> None:
    grace_s = 1.0
    with LocalRedis() as server:
        client = redis.Redis.from_url(server.url)
        own = Queue(client, "test")
        own.enqueue(hold(60))
        worker = RunningWorker(
            kind,
            server.url,
            concurrency=2,
            grace_s=grace_s,
            max_idle_s=30,
            client_options={"socket_timeout": 1, "socket_connect_timeout": 0.5},
        ).start()
        eventually(lambda: bool(worker.behaviour.seen("start")), "the job started")
        client.close()
        assert server.process is not None
        server.process.kill()  # Redis down, for good
        server.process.wait(10)
        took = worker.stop_and_join(timeout_s=grace_s + HAND_BACK_S + 10)
    print(f"\n{kind} worker, stop with Redis down (grace {grace_s} s): {took:.2f} s")
    assert worker.error is None
    assert took < grace_s + HAND_BACK_S + 2
