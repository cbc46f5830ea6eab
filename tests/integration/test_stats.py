"""lua/stats.lua through Queue.stats, on a real Redis.

Covers the counts per state, the longest-waiting job (found across every priority band, on a
pinned clock so ages are exact), the list of active jobs with their workers (soonest deadline
first, bounded by ``active_limit``), an empty queue, and that stats only reads: it neither
promotes due jobs nor reaps expired leases, and leaves the database byte-for-byte unchanged.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis

from scheduler import ActiveJob, JobOptions, Queue, State, ValidationError
from scheduler.testing import advance_clock, pin_clock
from tests.integration.helpers import T0, Snapshot, counts, seed_every_state


def server_ms(time_reply: tuple[int, int]) -> int:
    """A Redis ``TIME`` reply (seconds, microseconds) in Unix ms, as the scripts read it."""
    seconds, micros = time_reply
    return seconds * 1000 + micros // 1000


def enqueue_at(r: redis.Redis, q: Queue, at_ms: int, job_id: str, priority: int = 0) -> None:
    """Enqueue ``job_id`` with ``priority`` while the queue's clock is pinned at ``at_ms``."""
    pin_clock(r, q.name, at_ms)
    q.enqueue(job_id, id=job_id, options=JobOptions(priority=priority))


# -- counts ------------------------------------------------------------------------------------


def test_counts_cover_every_state(q: Queue) -> None:
    seed_every_state(q)
    q.enqueue("second waiting")
    q.enqueue("second delayed", options=JobOptions(delay_ms=5_000))

    stats = q.stats()

    assert stats.queue == "test"
    assert stats.counts == counts(waiting=2, delayed=2, active=1, completed=1, dead=1, cancelled=1)


def test_an_empty_queue_has_zero_counts_and_no_oldest_job(r: redis.Redis, q: Queue) -> None:
    server_before = r.time()
    stats = q.stats()
    server_after = r.time()

    assert stats.counts == counts()
    assert stats.oldest_waiting_ms is None
    assert stats.oldest_waiting_age_ms is None
    assert stats.active == []
    assert server_ms(server_before) <= stats.now_ms <= server_ms(server_after)
    assert r.dbsize() == 0


# -- the longest-waiting job -------------------------------------------------------------------


def test_the_oldest_waiting_job_is_found_in_any_priority_band(r: redis.Redis, q: Queue) -> None:
    enqueue_at(r, q, T0, "low-old", priority=-5)
    enqueue_at(r, q, T0 + 100, "mid-a", priority=0)
    enqueue_at(r, q, T0 + 150, "low-new", priority=-5)
    enqueue_at(r, q, T0 + 200, "high-a", priority=7)
    enqueue_at(r, q, T0 + 300, "high-b", priority=7)
    pin_clock(r, q.name, T0 + 1_000)

    stats = q.stats()

    assert stats.now_ms == T0 + 1_000
    assert stats.oldest_waiting_ms == T0
    assert stats.oldest_waiting_age_ms == 1_000


def test_the_oldest_waiting_time_moves_on_as_jobs_are_claimed(r: redis.Redis, q: Queue) -> None:
    enqueue_at(r, q, T0, "mid-old", priority=0)
    enqueue_at(r, q, T0 + 100, "high", priority=5)
    enqueue_at(r, q, T0 + 200, "low", priority=-5)
    pin_clock(r, q.name, T0 + 500)
    expected_after_each_claim = [
        ("high", T0, 500),
        ("mid-old", T0 + 200, 300),
        ("low", None, None),
    ]
    for claimed_id, oldest, age in expected_after_each_claim:
        assert [job.id for job in q.claim("worker-a").jobs] == [claimed_id]
        stats = q.stats()
        assert (stats.oldest_waiting_ms, stats.oldest_waiting_age_ms) == (oldest, age)


def test_a_handed_back_job_does_not_hide_an_older_waiting_job(r: redis.Redis, q: Queue) -> None:
    """A released job goes first in line (seq 0) but became ready only when it was handed back;
    the job behind it has waited longer."""
    enqueue_at(r, q, T0, "first")
    enqueue_at(r, q, T0 + 10, "second")
    pin_clock(r, q.name, T0 + 20)
    held = q.claim("worker-a").jobs[0]
    pin_clock(r, q.name, T0 + 30)
    q.release([held])
    assert q.inspect("second").ready_ms == T0 + 10
    pin_clock(r, q.name, T0 + 100)

    stats = q.stats()

    assert stats.oldest_waiting_ms == T0 + 10
    assert stats.oldest_waiting_age_ms == 90


def test_the_age_never_goes_negative(r: redis.Redis, q: Queue) -> None:
    enqueue_at(r, q, T0, "job")
    pin_clock(r, q.name, T0 - 50)
    stats = q.stats()
    assert (stats.oldest_waiting_ms, stats.oldest_waiting_age_ms) == (T0, 0)


# -- active jobs -------------------------------------------------------------------------------


def test_active_jobs_are_listed_with_worker_attempt_and_deadline(r: redis.Redis, q: Queue) -> None:
    pin_clock(r, q.name, T0)
    for job_id in ("retried", "long", "short"):
        q.enqueue(job_id, id=job_id)
    retried = q.claim("worker-r", lease_ms=9_000).jobs[0]
    q.fail(retried, "transient", delay_ms=0)
    advance_clock(r, q.name, 100)
    assert q.claim("worker-r", lease_ms=5_000).jobs[0].id == "long"
    assert q.claim("worker-s", lease_ms=1_000).jobs[0].id == "short"
    advance_clock(r, q.name, 100)
    retried = q.claim("worker-t", lease_ms=3_000).jobs[0]
    assert retried.id == "retried"
    q.heartbeat([retried], lease_ms=3_000, started={retried.token: 40})  # running since T0+160

    stats = q.stats()

    assert stats.counts == counts(active=3)
    assert stats.active == [
        ActiveJob("short", "worker-s", 1, T0 + 100 + 1_000, T0 + 100, 0),
        ActiveJob("retried", "worker-t", 2, T0 + 200 + 3_000, T0 + 200, T0 + 200),
        ActiveJob("long", "worker-r", 1, T0 + 100 + 5_000, T0 + 100, 0),
    ]
    assert [job.is_running for job in stats.active] == [False, True, False]
    assert stats.running == 1  # the others are leased, waiting in their workers


@pytest.mark.parametrize("active_limit", [0, 1, 2, 5])
def test_the_active_list_is_bounded_by_active_limit(
    r: redis.Redis, q: Queue, active_limit: int
) -> None:
    pin_clock(r, q.name, T0)
    for lease_ms in (4_000, 1_000, 3_000, 2_000, 5_000):
        q.enqueue(lease_ms)
        q.claim(f"worker-{lease_ms}", lease_ms=lease_ms)

    stats = q.stats(active_limit=active_limit)

    assert stats.counts[State.ACTIVE] == 5
    assert [a.worker for a in stats.active] == [
        f"worker-{ms}" for ms in (1_000, 2_000, 3_000, 4_000, 5_000)
    ][:active_limit]
    assert [a.deadline_ms - T0 for a in stats.active] == sorted(
        a.deadline_ms - T0 for a in stats.active
    )


@pytest.mark.parametrize("active_limit", [-1, 1_001, True, 1.5, "3"])
def test_a_bad_active_limit_is_refused(q: Queue, db_snapshot: Snapshot, active_limit: Any) -> None:
    seed_every_state(q)
    before = db_snapshot()
    with pytest.raises(ValidationError):
        q.stats(active_limit=active_limit)
    assert db_snapshot() == before


# -- read-only ---------------------------------------------------------------------------------


def test_stats_only_reads_even_when_maintenance_is_due(
    r: redis.Redis, q: Queue, db_snapshot: Snapshot
) -> None:
    pin_clock(r, q.name, T0)
    seed_every_state(q)
    advance_clock(r, q.name, 3_600_000)
    before = db_snapshot()

    stats = q.stats()

    assert db_snapshot() == before
    assert stats.counts == counts(waiting=1, delayed=1, active=1, completed=1, dead=1, cancelled=1)
    assert stats.oldest_waiting_age_ms == 3_600_000
    assert [a.id for a in stats.active] == ["active-1"]
    assert stats.active[0].deadline_ms < stats.now_ms
