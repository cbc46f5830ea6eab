"""Queues sharing one Redis stay apart, and every key a queue writes follows the schema.

Two queues (and two prefixes with the same queue name) hold jobs with the same ids and never
see each other's: not in claims, completions, cancels, requeues, purges, maintenance, stats or
clocks. After a full life cycle on several queues, every key in the database is
``<prefix>:{<queue>}:<part>`` with ``part`` in :data:`scheduler._keys.KEY_PARTS`, and all of one
queue's keys hash to one Redis Cluster slot.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import redis
from redis.crc import key_slot

from scheduler import JobOptions, JobSpec, Queue, Retention, State, Status
from scheduler._keys import KEY_PARTS
from scheduler.testing import advance_clock, pin_clock
from tests.integration.helpers import T0, counts, seed_every_state

KEY_PATTERN = re.compile(rb"(?P<prefix>[^{}]+):\{(?P<queue>[^{}]+)\}:(?P<part>[a-z_]+)")
"""A queue key: ``<prefix>:{<queue>}:<part>``."""

MakeQueue = Callable[..., Queue]


def pinned(r: redis.Redis, queue: Queue) -> Queue:
    """``queue`` with its clock pinned at :data:`T0`."""
    pin_clock(r, queue.name, T0, prefix=queue.ops.keys.prefix)
    return queue


@pytest.fixture(params=["names", "prefixes"])
def pair(request: pytest.FixtureRequest, r: redis.Redis, make_queue: MakeQueue) -> list[Queue]:
    """Two queues on one Redis that must not share anything: different names under one
    prefix, or one name under different prefixes."""
    if request.param == "names":
        queues = [make_queue("alpha"), make_queue("beta")]
    else:
        queues = [make_queue("test", prefix="left"), make_queue("test", prefix="right")]
    return [pinned(r, queue) for queue in queues]


def test_the_same_job_id_names_two_different_jobs(pair: list[Queue]) -> None:
    first, second = pair
    assert first.enqueue("first's", id="shared").created is True
    assert second.enqueue("second's", id="shared").created is True

    assert first.inspect("shared").payload == "first's"
    assert second.inspect("shared").payload == "second's"


def test_claims_and_completions_stay_in_their_queue(pair: list[Queue]) -> None:
    first, second = pair
    first.enqueue("first's", id="shared")
    second.enqueue("second's", id="shared")

    job = first.claim("worker-1", count=10).jobs
    assert [(j.id, j.payload) for j in job] == [("shared", "first's")]
    assert first.claim("worker-1").jobs == []
    assert first.complete(job[0], "done") is True

    assert second.inspect("shared").state is State.WAITING
    other = second.claim("worker-2").jobs[0]
    assert other.payload == "second's" and other.attempt == 1
    assert [s.status for s in second.complete_many([(job[0], None)])] == [Status.LEASE_LOST]


def test_administration_stays_in_its_queue(pair: list[Queue]) -> None:
    first, second = pair
    seeded = seed_every_state(first)
    seed_every_state(second)
    everything_once = counts(waiting=1, delayed=1, active=1, completed=1, dead=1, cancelled=1)

    assert first.cancel(seeded[State.WAITING]) is True
    assert first.requeue([seeded[State.DEAD]])[0].status is Status.OK
    assert first.purge(State.COMPLETED, limit=10)[0].status is Status.OK
    assert first.purge(State.CANCELLED, limit=10)[0].status is Status.OK

    assert second.stats().counts == everything_once
    assert first.stats().counts == counts(waiting=1, delayed=1, active=1)


def test_clocks_and_maintenance_stay_in_their_queue(r: redis.Redis, pair: list[Queue]) -> None:
    first, second = pair
    for queue in pair:
        queue.enqueue("leased", id="leased", options=JobOptions(lease_ms=1_000))
        queue.claim("worker-1")
        queue.enqueue("later", id="later", options=JobOptions(delay_ms=1_000))
    advance_clock(r, first.name, 5_000, prefix=first.ops.keys.prefix)

    reaped = first.reap()

    assert (reaped.promoted, reaped.requeued) == (1, 1)
    assert first.stats().now_ms == T0 + 5_000
    assert second.stats().now_ms == T0
    assert second.reap().promoted == 0
    assert second.stats().counts == counts(delayed=1, active=1)


def full_life_cycle(r: redis.Redis, queue: Queue) -> None:
    """Drive ``queue`` through every script and every kind of key: waiting, delayed, retried,
    completed, dead, requeued, cancelled, purged and reaped jobs, a running job, a stub, a
    corrupt record quarantined and a newer one met, a claim id, wake-ups and a moved clock."""
    pinned(r, queue)
    seed_every_state(queue)
    meta = queue.ops.keys.key("meta")
    queue.enqueue("corrupt", id="corrupt-1")
    r.hset(meta, "corrupt-1", b"\x03\x00\x01")  # too short for any version: quarantined
    queue.enqueue("newer", id="newer-1")
    r.hset(meta, "newer-1", b"\x7f\x00")  # a version this code does not know: left alone
    queue.claim("worker-0", count=10)  # meets both at the head of the ready set
    queue.enqueue_many([JobSpec(n, id=f"batch-{n}") for n in range(5)])
    leases = queue.claim("worker-1", count=4, claim_id="claim-1").jobs  # newer-1 passed over
    queue.heartbeat(leases, started={leases[-1].token: 0})
    queue.complete_many([(leases[0], "ok")])
    queue.fail(leases[1], "transient", delay_ms=500)
    queue.fail(leases[2], "fatal", retryable=False)
    queue.release([leases[3]])
    queue.requeue(["dead-1"])
    queue.purge(State.CANCELLED, limit=10)  # the only cancelled job: that key goes
    advance_clock(r, queue.name, 1_000, prefix=queue.ops.keys.prefix)
    queue.reap()
    strict = Queue(r, queue.name, prefix=queue.ops.keys.prefix, retention=Retention(max_dead=0))
    strict.reap()  # dead records over a count of 0, within the repeat window: stubs
    queue.inspect("completed-1")
    queue.stats()


def test_every_key_follows_the_schema_after_a_full_life_cycle(
    r: redis.Redis, make_queue: MakeQueue
) -> None:
    queues = [
        make_queue("test"),
        make_queue("alpha.v2-x_y"),
        make_queue("test", prefix="other:ns"),
    ]
    for queue in queues:
        full_life_cycle(r, queue)
    owners = {(q.ops.keys.prefix.encode(), q.name.encode()) for q in queues}

    seen: dict[tuple[bytes, bytes], set[str]] = {owner: set() for owner in owners}
    for key in r.scan_iter(count=1_000):
        match = KEY_PATTERN.fullmatch(key)
        assert match is not None, key
        owner = (match["prefix"], match["queue"])
        assert owner in owners, key
        assert match["part"].decode() in KEY_PARTS, key
        seen[owner].add(match["part"].decode())

    for owner, parts in seen.items():
        # emptied by the end: cancelled by the purge, dead by the strict reap (stubs now),
        # running by the release that ended the running job's lease
        assert parts == set(KEY_PARTS) - {"cancelled", "dead", "running"}, owner
        prefix, name = owner
        slots = {key_slot(prefix + b":{" + name + b"}:" + part.encode()) for part in parts}
        assert slots == {key_slot(name)}, owner
