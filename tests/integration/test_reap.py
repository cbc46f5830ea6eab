"""lua/reap.lua through Queue.reap, and the recovery bound claims give without it, on a real
Redis.

Covers every status the script replies with (ok, bad_arg): promotion of due delayed jobs,
expiry of leases (back to waiting, or dead once attempts are used up), the per-call limit on
each kind of work, trimming of finished records, forgetting old claim records, and the recovery
of a vanished worker's job by the next claim after the lease deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import pytest
import redis

from scheduler import (
    JobNotFound,
    JobOptions,
    JobSpec,
    Outcome,
    Queue,
    Reaped,
    Retention,
    State,
    ValidationError,
)
from tests.integration.helpers import PER_JOB_HASHES, T0, Snapshot, move_clock, run_script

pytestmark = pytest.mark.usefixtures("pinned_clock")


def enqueue(q: Queue, count: int, options: JobOptions | None = None) -> list[str]:
    """Enqueue ``count`` jobs with ``options``; their ids in order."""
    return [e.id for e in q.enqueue_many([JobSpec(n, None, options) for n in range(count)])]


def lease_all(q: Queue, count: int, options: JobOptions | None = None) -> list[str]:
    """Enqueue ``count`` jobs and claim them all in one call; their ids."""
    ids = enqueue(q, count, options)
    claimed = q.claim("worker-a", count=count).jobs
    assert sorted(job.id for job in claimed) == sorted(ids)
    return ids


def members(r: redis.Redis, q: Queue, part: str) -> set[str]:
    """The ids in one of the queue's ZSETs."""
    ids = cast(list[bytes], r.zrange(q.ops.keys.key(part), 0, -1))
    return {m.decode() for m in ids}


# -- promotion ---------------------------------------------------------------------------------


def test_due_delayed_jobs_are_promoted_and_the_others_wait(r: redis.Redis, q: Queue) -> None:
    soon = enqueue(q, 3, JobOptions(delay_ms=1_000))
    later = enqueue(q, 2, JobOptions(delay_ms=5_000))
    assert q.reap() == Reaped(promoted=0, requeued=0, dead=0, trimmed=0)
    move_clock(r, 1_000)

    assert q.reap() == Reaped(promoted=3, requeued=0, dead=0, trimmed=0)

    assert members(r, q, "ready") == set(soon)
    assert members(r, q, "delayed") == set(later)
    assert {q.inspect(i).state for i in soon} == {State.WAITING}
    assert {q.inspect(i).state for i in later} == {State.DELAYED}


# -- expired leases ----------------------------------------------------------------------------


def test_an_expired_lease_goes_back_to_waiting_and_is_claimed_with_the_next_attempt(
    r: redis.Redis, q: Queue
) -> None:
    job_id = enqueue(q, 1)[0]
    first = q.claim("worker-a", lease_ms=1_000).jobs[0]
    move_clock(r, 999)
    assert q.reap().requeued == 0
    move_clock(r, 1)

    assert q.reap() == Reaped(promoted=0, requeued=1, dead=0, trimmed=0)

    info = q.inspect(job_id)
    assert (info.state, info.outcome, info.attempt, info.deadline_ms) == (
        State.WAITING,
        Outcome.EXPIRED,
        1,
        0,
    )
    assert (members(r, q, "ready"), members(r, q, "active")) == ({job_id}, set())
    again = q.claim("worker-b").jobs[0]
    assert (again.id, again.attempt) == (job_id, 2)
    assert again.token != first.token


def test_an_expired_lease_on_the_last_attempt_goes_to_the_dead_letters(
    r: redis.Redis, q: Queue
) -> None:
    job_id = lease_all(q, 1, JobOptions(max_attempts=1, lease_ms=1_000))[0]
    move_clock(r, 1_000)

    assert q.reap() == Reaped(promoted=0, requeued=0, dead=1, trimmed=0)

    info = q.inspect(job_id)
    assert (info.state, info.outcome, info.finished_ms) == (State.DEAD, Outcome.DEAD, T0 + 1_000)
    assert info.error == "lease expired on attempt 1 of 1 (worker worker-a)"
    assert members(r, q, "dead") == {job_id}
    assert q.claim("worker-b").jobs == []


# -- the per-call limit ------------------------------------------------------------------------


def due_delayed_jobs(r: redis.Redis, q: Queue, count: int) -> None:
    """``count`` delayed jobs, all due now."""
    enqueue(q, count, JobOptions(delay_ms=1_000))
    move_clock(r, 1_000)


def expired_leases(r: redis.Redis, q: Queue, count: int) -> None:
    """``count`` leases past their deadline, with attempts left."""
    lease_all(q, count, JobOptions(lease_ms=1_000))
    move_clock(r, 1_000)


def expired_last_leases(r: redis.Redis, q: Queue, count: int) -> None:
    """``count`` leases past their deadline, on their last attempt."""
    lease_all(q, count, JobOptions(lease_ms=1_000, max_attempts=1))
    move_clock(r, 1_000)


def expired_completed_records(r: redis.Redis, q: Queue, count: int) -> None:
    """``count`` completed records past their retention."""
    lease_all(q, count, JobOptions(keep_result_ms=1_000))
    active = members(r, q, "active")
    tokens = {i: q.inspect(i).token for i in active}
    q.complete_many([((i, tokens[i]), None) for i in active])
    move_clock(r, 1_000)


@pytest.mark.parametrize(
    ("setup", "field"),
    [
        (due_delayed_jobs, "promoted"),
        (expired_leases, "requeued"),
        (expired_last_leases, "dead"),
        (expired_completed_records, "trimmed"),
    ],
)
def test_the_limit_bounds_each_kind_of_work(
    r: redis.Redis,
    q: Queue,
    setup: Callable[[redis.Redis, Queue, int], None],
    field: str,
) -> None:
    setup(r, q, 25)

    done = [getattr(q.reap(limit=10), field) for _ in range(4)]

    assert done == [10, 10, 5, 0]


# -- trimming ----------------------------------------------------------------------------------


def finish_one_of_each(q: Queue) -> dict[State, str]:
    """One completed, one dead and one cancelled job; their ids by state."""
    ids = dict(zip((State.COMPLETED, State.DEAD, State.CANCELLED), enqueue(q, 3), strict=True))
    completed, dead = q.claim("worker-a", count=2).jobs
    assert q.complete(completed) is True
    q.fail(dead, "fatal", retryable=False)
    assert q.cancel(ids[State.CANCELLED]) is True
    return ids


def assert_gone(r: redis.Redis, q: Queue, job_id: str) -> None:
    """Nothing about ``job_id`` is left in the queue."""
    with pytest.raises(JobNotFound):
        q.inspect(job_id)
    for part in PER_JOB_HASHES:
        assert not r.hexists(q.ops.keys.key(part), job_id), part
    for part in ("completed", "dead", "cancelled"):
        assert job_id not in members(r, q, part), part


def test_finished_records_past_their_retention_are_trimmed(
    r: redis.Redis, make_queue: Callable[..., Queue]
) -> None:
    q = make_queue("test", defaults=JobOptions(keep_result_ms=1_000, keep_dead_ms=2_000))
    ids = finish_one_of_each(q)
    move_clock(r, 1_000)

    assert q.reap().trimmed == 1
    assert_gone(r, q, ids[State.COMPLETED])
    move_clock(r, 1_000)

    assert q.reap().trimmed == 2
    for job_id in ids.values():
        assert_gone(r, q, job_id)
    assert q.reap().trimmed == 0


def test_finished_records_over_the_retention_counts_are_trimmed(
    r: redis.Redis, make_queue: Callable[..., Queue]
) -> None:
    generous = make_queue("test")
    older = finish_one_of_each(generous)
    move_clock(r, 1)
    newer = finish_one_of_each(generous)
    retention = Retention(max_completed=1, max_dead=1, max_cancelled=1, repeat_window_ms=5_000)
    strict = make_queue("test", retention=retention)

    assert strict.reap().trimmed == 3  # stubs of the older three, for the repeat window

    assert {strict.inspect(i).stub for i in older.values()} == {True}
    move_clock(r, 5_000)
    assert strict.reap().trimmed == 3  # the stubs go when the window ends
    for job_id in older.values():
        assert_gone(r, strict, job_id)
    assert {state: strict.inspect(i).state for state, i in newer.items()} == {
        state: state for state in newer
    }


# -- claim records -----------------------------------------------------------------------------


def test_a_claim_record_is_forgotten_once_the_repeat_window_has_passed(
    r: redis.Redis, make_queue: Callable[..., Queue]
) -> None:
    q = make_queue("test", retention=Retention(repeat_window_ms=2_000))
    requests, request_exp = q.ops.keys.key("requests"), q.ops.keys.key("request_exp")
    assert requests == "scheduler:{test}:requests"
    enqueue(q, 1)
    q.claim("worker-a", claim_id="claim-1", lease_ms=3_600_000)  # an hour: not what counts
    assert r.hexists(requests, "claim-1")
    move_clock(r, 1_999)
    q.reap()
    assert r.hexists(requests, "claim-1")
    move_clock(r, 1)

    q.reap()

    assert not r.hexists(requests, "claim-1")
    assert r.zscore(request_exp, "claim-1") is None


# -- the recovery bound ------------------------------------------------------------------------


def test_a_vanished_workers_job_is_claimable_as_soon_as_its_lease_runs_out(
    r: redis.Redis, q: Queue
) -> None:
    """No reap call: the next claim after the deadline reaps the lease and takes the job."""
    job_id = enqueue(q, 1, JobOptions(lease_ms=1_000))[0]
    vanished = q.claim("worker-a").jobs[0]
    move_clock(r, 999)
    assert q.claim("worker-b").jobs == []
    move_clock(r, 1)

    recovered = q.claim("worker-b").jobs

    assert [(job.id, job.attempt) for job in recovered] == [(job_id, 2)]
    assert recovered[0].deadline_ms == vanished.deadline_ms + 1_000


# -- refusals ----------------------------------------------------------------------------------


def test_a_limit_out_of_range_is_refused_before_anything_is_sent(
    r: redis.Redis, q: Queue, db_snapshot: Snapshot
) -> None:
    expired_leases(r, q, 1)
    before = db_snapshot()
    for limit in (0, 1001):
        with pytest.raises(ValidationError):
            q.reap(limit=limit)
    assert db_snapshot() == before


@pytest.mark.parametrize(
    ("args", "refused"),
    [
        (["0", "100", "100", "100", "60000"], "limit"),
        (["1001", "100", "100", "100", "60000"], "limit"),
        (["ten", "100", "100", "100", "60000"], "limit"),
        (["10", "-1", "100", "100", "60000"], "max_completed"),
        (["10", "100", "1000000001", "100", "60000"], "max_dead"),
        (["10", "100", "100", "", "60000"], "max_cancelled"),
        (["10", "100", "100", "100", "0"], "window_ms"),
        (["10", "100", "100", "100", "60000", "extra"], "argv"),
    ],
)
def test_the_script_refuses_bad_arguments_and_writes_nothing(
    r: redis.Redis, q: Queue, db_snapshot: Snapshot, args: list[str], refused: str
) -> None:
    """An expired lease and a due delayed job wait: a reap that ran would change both."""
    expired_leases(r, q, 1)
    due_delayed_jobs(r, q, 1)
    assert (len(members(r, q, "active")), len(members(r, q, "delayed"))) == (1, 1)
    before = db_snapshot()

    reply = run_script(r, q, "reap", args)

    assert reply == [b"bad_arg", refused.encode()]
    assert db_snapshot() == before
