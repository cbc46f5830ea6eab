"""Regressions: failures the state machine found, each shrunk to its minimal sequence of steps.

Each test replays the steps on :class:`QueueMachine` (the real queue and the reference model
side by side, with the invariants checked after every step), then states the failure as a
plain assertion on the queue, so that the bug reads without the model.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from scheduler import JobOptions, QueueStats, State

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
    ready = [seen.records[job_id].ready_ms for job_id, _ in seen.sets[State.WAITING]]
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
