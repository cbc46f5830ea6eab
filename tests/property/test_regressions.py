"""Regressions: failures the state machine found, each shrunk to its minimal sequence of steps.

Each test replays the steps on :class:`QueueMachine` (the real queue and the reference model
side by side, with the invariants checked after every step), then states the failure as a
plain assertion on the queue, so that the bug reads without the model.

One more test guards the machine's token check across a server restart, which no single
server's run can show: making the machine's replays deterministic (seeding the scripts' PRNG)
showed that Redis starts that PRNG from the same seed at every start.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
import redis

from scheduler import JobInfo, JobOptions, Queue, QueueStats, State, Status
from scheduler._local_redis import LocalRedis

from .test_state_machine import Observed, QueueMachine

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
