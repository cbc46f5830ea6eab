"""Regressions: failures the state machine found, each shrunk to its minimal sequence of steps.

Each test replays the steps on :class:`QueueMachine` (the real queue and the reference model
side by side, with the invariants checked after every step), then states the failure as a
plain assertion on the queue, so that the bug reads without the model.

One more test guards the machine's token check across a server restart, which no single
server's run can show: making the machine's replays deterministic (seeding the scripts' PRNG)
showed that Redis starts that PRNG from the same seed at every start.

The last tests are places where a script did not do what its header says, found while
bringing the model up to date with the reworked scripts, and fixed since; each states the
header's promise as a plain assertion.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
import redis

from scheduler import JobInfo, JobOptions, Queue, QueueStats, Retention, State, Status
from scheduler._local_redis import LocalRedis
from scheduler.testing import advance_clock, pin_clock

from .test_state_machine import QUEUE, T0, Observed, QueueMachine

ONE_SECOND_LEASE = JobOptions(lease_ms=1000, max_attempts=3, backoff_ms=0, jitter=0.0)
"""The options of the jobs below: nothing random, a lease of 1000 ms."""


@pytest.fixture
def machine(redis_url: str) -> Iterator[QueueMachine]:
    """A started machine (empty database, clock pinned) on the test Redis."""
    state = QueueMachine(redis_url)
    state.start(first_jobs=[])
    yield state
    state.teardown()


def checked(machine: QueueMachine) -> None:
    """What hypothesis runs after each step: the invariants, and Redis equal to the model."""
    machine.redis_keeps_the_invariants_and_agrees_with_model()


def longest_waiting_ready_ms(machine: QueueMachine) -> tuple[QueueStats, int]:
    """The queue's stats, and the ``ready_ms`` of its longest-waiting job as ``inspect``
    reports it (the value ``stats.oldest_waiting_ms`` must equal)."""
    stats = machine.q.stats()
    seen = Observed.read(machine.q)
    ready = []
    for job_id, _ in seen.zsets["ready"]:
        info = seen.records[job_id]
        assert isinstance(info, JobInfo)
        ready.append(info.ready_ms)
    assert ready, "no job is waiting"
    return stats, min(ready)


def test_stats_oldest_waiting_sees_a_promoted_job(machine: QueueMachine) -> None:
    """stats.lua reports when the longest-waiting ready job became ready, taking it to be the
    head of a priority band. A delayed job is due at its run-at time (its ready_ms) but is
    promoted later, behind jobs enqueued in between: the band's head is then younger than it,
    and stats reports the head's ready_ms (T0 + 500) instead of the due job's (T0 + 300).

    Shrunk from: enqueue(delay 300), move_clock(500), enqueue(delay 0), reap(), stats.
    """
    machine.enqueue(options=replace(ONE_SECOND_LEASE, delay_ms=300), reuse=None)
    checked(machine)
    machine.move_clock(to=500)
    checked(machine)
    machine.enqueue(options=ONE_SECOND_LEASE, reuse=None)
    checked(machine)
    machine.reap(limit=1000)
    stats, oldest = longest_waiting_ready_ms(machine)
    assert stats.counts[State.WAITING] == 2
    assert stats.oldest_waiting_ms == oldest


def test_stats_oldest_waiting_sees_past_a_handed_back_job(machine: QueueMachine) -> None:
    """A job handed back (release.lua) goes first in its priority band with ready_ms = now,
    so it becomes the band's head although the job behind it has waited longer: stats
    reports the hand-back's ready_ms (T0 + 1) instead of the other job's (T0).

    Shrunk from: enqueue, enqueue, move_clock(1), claim(1), hand_back, stats.
    """
    machine.enqueue(options=ONE_SECOND_LEASE, reuse=None)
    machine.enqueue(options=ONE_SECOND_LEASE, reuse=None)
    checked(machine)
    machine.move_clock(to=1)
    machine.claim(worker="worker-a", count=1, maintenance=100, repeat=None)
    checked(machine)
    machine.hand_back(refs=[("held", 0)])
    stats, oldest = longest_waiting_ready_ms(machine)
    assert stats.counts[State.WAITING] == 2
    assert stats.oldest_waiting_ms == oldest


def test_a_rolled_back_server_never_hands_out_a_token_twice() -> None:
    """lua/lib/lease.lua promises that a Redis rolled back (a restore, a failover to a lagging
    replica) never hands out a token twice: the nonce is random. But it comes from Lua's
    math.random, which Redis seeds identically at every start, so a server restored from a
    snapshot draws the same nonces again: the job's first lease after the restore gets the
    very token of its first lease before, and the worker still holding that old lease can
    complete the new one (fencing is lost).

    Steps: enqueue j, SAVE (the snapshot), claim j (token T), crash and restart (j is waiting
    again, from the snapshot), claim j again: its token must not be T.
    """
    with LocalRedis() as server:
        before = redis.Redis.from_url(server.url)
        queue = Queue(before, "rollback")
        queue.enqueue("work", id="j", options=ONE_SECOND_LEASE)
        before.save()
        old = queue.claim("worker-a").jobs[0]
        before.close()
        server.crash_and_restart()
        after = redis.Redis.from_url(server.url)
        queue = Queue(after, "rollback")
        assert queue.inspect("j").state is State.WAITING, "the restart did not roll back"
        new = queue.claim("worker-b").jobs[0]
        assert new.attempt == old.attempt == 1
        assert new.token != old.token, f"token {new.token} handed out twice"
        late = queue.complete_many([((old.id, old.token), "from the old lease")])
        assert late[0].status is Status.LEASE_LOST
        after.close()


# -- the scripts against their own headers ------------------------------------------------------
#
# Each test below states what a script's header (or the rule it is built on) promises, as a
# plain assertion on a queue. Each was found by the state machine as a place where a script
# did not do what it said, and failed until the script was fixed: records of a newer version
# at the head of a set starved the walks behind them, trimming counted records it had only set
# aside, a stub forgot the run-at time a repeated fail answers with, and an empty claim named a
# time already past.

NEWER_RECORD = b"\x04future"
"""A record of version 4: the scripts leave it where it is, untouched."""


@pytest.fixture
def queue(r: redis.Redis) -> Queue:
    """The queue ``sm`` on a clean database, its clock pinned at T0."""
    pin_clock(r, QUEUE, T0)
    return Queue(r, QUEUE)


def plant(queue: Queue, job_id: str, record: bytes) -> None:
    """Write ``record`` over the record of ``job_id`` (which stays in its set)."""
    queue.client.hset(queue.ops.keys.key("meta"), job_id, record)


def test_a_newer_record_at_the_head_of_the_ready_set_does_not_starve_claims(
    queue: Queue,
) -> None:
    """claim.lua leases "up to `count` waiting jobs" and answers ``empty`` "when no job could
    be leased"; a newer record is "left where it is". A worker of this version that claims one
    job at a time then gets ``empty`` for ever while other jobs wait behind the newer record:
    one job enqueued by a newer version (a rolling upgrade) stops every such worker.

    Shrunk from: enqueue a, enqueue b, plant(version 4 over a), claim(count=1).
    """
    queue.enqueue("first", id="a")
    queue.enqueue("second", id="b")
    plant(queue, "a", NEWER_RECORD)
    claims = [queue.claim("worker-a", count=1) for _ in range(3)]
    assert [job.id for claimed in claims for job in claimed.jobs] == ["b"]


@pytest.mark.parametrize("kind", ["delayed", "active"])
def test_newer_records_at_the_head_never_stop_promotion_or_expiry(queue: Queue, kind: str) -> None:
    """reap.lua "promotes due delayed jobs, ends expired leases ... bounded per call", so that
    a job whose worker died is offered again within lease + reaper interval (DESIGN 1.3).
    ``limit`` newer records at the head of the delayed (or active) set, each met and left
    where it is, take the whole limit of every call: the due job behind them is never
    promoted (the expired lease behind them never ends), however often reap runs. Shown with
    limit 1; with the default limits it takes 200 such records (reap) and 100 (a claim's
    maintenance), as a rollback after a newer version ran a while leaves behind.

    Shrunk from: enqueue a, b (delay 100 ms), plant(version 4 over a),
    move_clock(100), reap(limit=1) (or: claim both with a 100 ms lease, then the same).
    """
    options = JobOptions(delay_ms=100) if kind == "delayed" else JobOptions(lease_ms=100)
    queue.enqueue("first", id="a", options=options)
    queue.enqueue("second", id="b", options=options)
    if kind == "active":
        assert len(queue.claim("worker-a", count=2).jobs) == 2
    plant(queue, "a", NEWER_RECORD)
    advance_clock(queue.client, QUEUE, 100)
    for _ in range(3):
        queue.reap(limit=1)
    assert queue.inspect("b").state is State.WAITING


@pytest.mark.parametrize("record", [NEWER_RECORD, b""], ids=["newer", "corrupt"])
def test_reap_counts_as_trimmed_only_what_it_trimmed(queue: Queue, record: bytes) -> None:
    """reap.lua: "trimmed counts records deleted or made stubs, and stubs deleted" (and
    trim_finished: "Returns the number of records deleted or made stubs"). A record it cannot
    read, met in a finished set, is neither: a newer one stays (and is counted again by every
    reap, as long as it stays at the head), a corrupt one goes to the quarantine.

    Shrunk from: enqueue a (keep_result_ms 0), claim, complete (trim_batch 0), plant over a,
    reap.
    """
    queue = Queue(queue.client, QUEUE, retention=Retention(trim_batch=0))
    queue.enqueue("work", id="a", options=JobOptions(keep_result_ms=0))
    assert queue.complete(queue.claim("worker-a").jobs[0], "done")
    plant(queue, "a", record)
    assert [queue.reap().trimmed for _ in range(2)] == [0, 0]


def test_a_repeated_fail_answers_as_the_first_after_the_job_became_a_stub(
    queue: Queue,
) -> None:
    """fail.lua: a repeat with the same token gets the first outcome ("run_at_ms is then the
    job's ready_ms"), and count trimming keeps a stub so that "a repeated enqueue, complete,
    fail or cancel within the window still finds the first call's outcome" (lib/trim.lua).
    A job failed for a retry in 1 s, then cancelled while delayed, keeps that outcome; once
    count trimming makes it a stub (within the repeat window), the repeated fail answers
    ``run_at_ms`` 0 instead of the first answer's run-at time.

    Shrunk from: enqueue a, claim, fail(delay 1000), cancel a with max_cancelled 0, fail
    again with the same token.
    """
    queue = Queue(queue.client, QUEUE, retention=Retention(max_cancelled=0, trim_batch=1))
    queue.enqueue("work", id="a")
    lease = queue.claim("worker-a").jobs[0]
    first = queue.fail(lease, "boom", delay_ms=1000)
    assert queue.cancel("a")
    assert queue.inspect("a").stub
    again = queue.fail(lease, "boom", delay_ms=1000)
    assert (again.outcome, again.run_at_ms, again.repeated) == (
        first.outcome,
        first.run_at_ms,
        True,
    )


def test_an_empty_claim_never_names_a_time_already_past(queue: Queue) -> None:
    """claim.lua: ``next_ms`` "is the earliest time something may become claimable ...: an
    idle worker may wait until then". A newer record left in the active set past its deadline
    never becomes claimable by this version, yet every empty claim names that deadline, which
    has passed: the worker (scheduler._worker_core) waits 0 s and claims again, in a tight
    loop against Redis, for as long as the record stays.

    Shrunk from: enqueue a (lease 100 ms), claim, plant(version 4 over a),
    move_clock(1000), claim.
    """
    queue.enqueue("work", id="a", options=JobOptions(lease_ms=100))
    assert queue.claim("worker-a").jobs
    plant(queue, "a", NEWER_RECORD)
    advance_clock(queue.client, QUEUE, 1_000)
    claimed = queue.claim("worker-a")
    assert claimed.jobs == []
    assert claimed.next_ms is None or claimed.next_ms > claimed.now_ms
