"""lua/heartbeat.lua through Queue.heartbeat, on a real Redis.

Covers the statuses the script answers with (ok, with the lost ids listed; bad_arg): deadlines
extended from the server's clock by the job's own lease or the lease given, every way a lease
can be lost (wrong or made-up token, expired, re-claimed by another worker, completed, missing
job) reported and never revived, per-item deadlines in order for a mixed batch, the active
ZSET kept equal to each record's deadline, and bad input refused with nothing written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from scheduler import Heartbeat, Job, JobOptions, Queue, State, ValidationError
from tests.integration.helpers import (
    MADE_UP_TOKEN,
    T0,
    Snapshot,
    leased,
    move_clock,
    run_script,
)

LEASE_MS = 10_000
"""The lease of every job these tests enqueue (unless a test says otherwise)."""

LEASE = JobOptions(lease_ms=LEASE_MS)
"""The options of every job these tests enqueue (unless a test says otherwise)."""

ACTIVE_KEY = "scheduler:{test}:active"
"""The ``test`` queue's active ZSET, spelled out: leased job ids scored by lease deadline."""

pytestmark = pytest.mark.usefixtures("pinned_clock")


def leased_jobs(q: Queue, count: int) -> list[Job]:
    """Enqueue ``count`` jobs with a lease of :data:`LEASE_MS` and claim them all in one call."""
    for _ in range(count):
        q.enqueue("work", options=LEASE)
    jobs = q.claim("worker-a", count=count).jobs
    assert len(jobs) == count
    return jobs


def assert_score_matches_record(r: redis.Redis, q: Queue, job_id: str) -> None:
    """The active ZSET's score for ``job_id`` equals its record's deadline."""
    assert r.zscore(ACTIVE_KEY, job_id) == q.inspect(job_id).deadline_ms


# -- extended ------------------------------------------------------------------------------------


def test_a_heartbeat_extends_the_lease_by_the_jobs_own_lease(r: redis.Redis, q: Queue) -> None:
    job = leased(q, options=LEASE)
    move_clock(r, 4_000)

    beat = q.heartbeat([job])

    assert beat == Heartbeat([], [T0 + 4_000 + LEASE_MS], T0 + 4_000)
    assert q.inspect(job.id).deadline_ms == T0 + 4_000 + LEASE_MS
    assert_score_matches_record(r, q, job.id)


def test_a_heartbeat_with_lease_ms_sets_the_deadline_from_now(r: redis.Redis, q: Queue) -> None:
    job = leased(q, options=LEASE)
    move_clock(r, 1_000)

    beat = q.heartbeat([job], lease_ms=2_500)

    assert beat.deadlines_ms == [T0 + 3_500]
    assert q.inspect(job.id).deadline_ms == T0 + 3_500
    assert q.inspect(job.id).options.lease_ms == LEASE_MS
    assert_score_matches_record(r, q, job.id)


def test_a_heartbeat_may_shorten_a_lease(r: redis.Redis, q: Queue) -> None:
    job = leased(q, options=LEASE)

    beat = q.heartbeat([job], lease_ms=1)

    assert beat.deadlines_ms == [T0 + 1]
    assert_score_matches_record(r, q, job.id)


def test_a_lease_kept_alive_by_heartbeats_outlives_its_first_deadline(
    r: redis.Redis, q: Queue
) -> None:
    job = leased(q, options=JobOptions(lease_ms=1_000))

    for _ in range(5):
        move_clock(r, 900)
        assert q.heartbeat([job]).lost == []
    claimed_meanwhile = q.claim("worker-b")

    assert claimed_meanwhile.jobs == []
    info = q.inspect(job.id)
    assert (info.state, info.token, info.attempt) == (State.ACTIVE, job.token, 1)
    assert info.deadline_ms == T0 + 4_500 + 1_000
    assert q.complete(job, "done")


def test_a_heartbeat_accepts_a_job_id_and_token_tuple(q: Queue) -> None:
    job = leased(q, options=LEASE)

    beat = q.heartbeat([(job.id, job.token)])

    assert beat.lost == []
    assert beat.deadlines_ms == [T0 + LEASE_MS]


def test_a_heartbeat_just_before_the_deadline_is_accepted(r: redis.Redis, q: Queue) -> None:
    job = leased(q, options=LEASE)
    move_clock(r, LEASE_MS - 1)

    beat = q.heartbeat([job])

    assert beat.lost == []
    assert beat.deadlines_ms == [T0 + LEASE_MS - 1 + LEASE_MS]


# -- lost ------------------------------------------------------------------------------------------


def wrong_token(r: redis.Redis, q: Queue, job: Job) -> tuple[str, str]:
    """The job's id with another job's current token."""
    other = leased(q, options=LEASE)
    return job.id, other.token


def made_up_token(r: redis.Redis, q: Queue, job: Job) -> tuple[str, str]:
    """The job's id with a well-formed token no claim handed out."""
    return job.id, MADE_UP_TOKEN


def token_of_a_finished_lease_after_a_retry(r: redis.Redis, q: Queue, job: Job) -> tuple[str, str]:
    """The token of a lease that failed; the job waits for its next attempt."""
    q.fail(job, "boom", delay_ms=0)
    return job.id, job.token


def completed_job(r: redis.Redis, q: Queue, job: Job) -> tuple[str, str]:
    """The token of a lease that completed its job."""
    assert q.complete(job, "done")
    return job.id, job.token


def missing_job(r: redis.Redis, q: Queue, job: Job) -> tuple[str, str]:
    """A job id that was never enqueued."""
    return "no-such-job", job.token


@pytest.mark.parametrize(
    "lost_lease",
    [
        wrong_token,
        made_up_token,
        token_of_a_finished_lease_after_a_retry,
        completed_job,
        missing_job,
    ],
)
def test_a_lease_that_is_not_current_is_reported_lost_and_nothing_changes(
    r: redis.Redis,
    q: Queue,
    db_snapshot: Snapshot,
    lost_lease: Callable[[redis.Redis, Queue, Job], tuple[str, str]],
) -> None:
    job = leased(q, options=LEASE)
    ref = lost_lease(r, q, job)
    move_clock(r, 1_000)
    before = db_snapshot()

    beat = q.heartbeat([ref])

    assert beat == Heartbeat([ref[0]], [0], T0 + 1_000)
    assert db_snapshot() == before


def test_an_expired_lease_is_reported_lost_and_not_revived(
    r: redis.Redis, q: Queue, db_snapshot: Snapshot
) -> None:
    job = leased(q, options=LEASE)
    move_clock(r, LEASE_MS)
    before = db_snapshot()

    beat = q.heartbeat([job])

    assert beat.lost == [job.id]
    assert beat.deadlines_ms == [0]
    assert db_snapshot() == before
    info = q.inspect(job.id)
    assert info.deadline_ms == T0 + LEASE_MS
    taken_over = q.claim("worker-b").jobs
    assert [(j.id, j.attempt) for j in taken_over] == [(job.id, 2)]


def test_a_heartbeat_after_another_worker_reclaimed_the_job_reports_lost(
    r: redis.Redis, q: Queue
) -> None:
    old = leased(q, options=JobOptions(lease_ms=1_000), worker="worker-a")
    move_clock(r, 1_001)
    new = q.claim("worker-b").jobs[0]
    assert (new.id, new.attempt) == (old.id, 2)

    stale = q.heartbeat([old], lease_ms=60_000)
    current = q.heartbeat([new])

    assert stale.lost == [old.id] and stale.deadlines_ms == [0]
    assert current.lost == [] and current.deadlines_ms == [T0 + 1_001 + 1_000]
    info = q.inspect(old.id)
    assert (info.worker, info.token, info.deadline_ms) == ("worker-b", new.token, T0 + 2_001)
    assert_score_matches_record(r, q, old.id)


def test_a_mixed_batch_answers_per_item_deadlines_in_order(r: redis.Redis, q: Queue) -> None:
    alive_1, alive_2, to_complete = leased_jobs(q, 3)
    assert q.complete(to_complete, None)
    move_clock(r, 2_000)

    beat = q.heartbeat(
        [
            alive_1,
            (alive_1.id, MADE_UP_TOKEN),
            to_complete,
            ("never-enqueued", MADE_UP_TOKEN),
            alive_2,
        ],
        lease_ms=5_000,
    )

    new_deadline = T0 + 2_000 + 5_000
    assert beat.deadlines_ms == [new_deadline, 0, 0, 0, new_deadline]
    assert beat.lost == [alive_1.id, to_complete.id, "never-enqueued"]
    assert beat.now_ms == T0 + 2_000
    for job in (alive_1, alive_2):
        assert q.inspect(job.id).deadline_ms == new_deadline
        assert_score_matches_record(r, q, job.id)


def test_the_active_score_tracks_the_record_across_heartbeats(r: redis.Redis, q: Queue) -> None:
    jobs = leased_jobs(q, 3)

    for step, lease_ms in enumerate([None, 1_234, 99_999, None], start=1):
        move_clock(r, 100 * step)
        assert q.heartbeat(jobs, lease_ms=lease_ms).lost == []
        for job in jobs:
            assert_score_matches_record(r, q, job.id)


# -- refusals --------------------------------------------------------------------------------------


BAD_REFS: list[tuple[str, Callable[[Job], list[Any]]]] = [
    ("empty list", lambda job: []),
    ("1001 items", lambda job: [job] * 1001),
    ("token that is an int", lambda job: [(job.id, 123)]),
    ("token that is bytes", lambda job: [(job.id, job.token.encode())]),
    ("empty token", lambda job: [(job.id, "")]),
    ("token of 65 characters", lambda job: [(job.id, "t" * 65)]),
    ("job id with a space", lambda job: [("a b", job.token)]),
    ("lease that is a bare id", lambda job: [job.id]),
    ("lease tuple of three", lambda job: [(job.id, job.token, "x")]),
    ("one bad item after a good one", lambda job: [job, (job.id, None)]),
]
"""Leases the client must refuse, each built from a current lease."""


@pytest.mark.parametrize("make_refs", [pytest.param(make, id=name) for name, make in BAD_REFS])
def test_bad_input_is_refused_before_anything_is_sent(
    q: Queue, db_snapshot: Snapshot, make_refs: Callable[[Job], list[Any]]
) -> None:
    job = leased(q, options=LEASE)
    before = db_snapshot()

    with pytest.raises(ValidationError):
        q.heartbeat(make_refs(job))

    assert db_snapshot() == before
    assert q.inspect(job.id).deadline_ms == T0 + LEASE_MS


@pytest.mark.parametrize("lease_ms", [0, -1, True, 1.5])
def test_a_bad_lease_ms_is_refused_before_anything_is_sent(
    q: Queue, db_snapshot: Snapshot, lease_ms: Any
) -> None:
    job = leased(q, options=LEASE)
    before = db_snapshot()

    with pytest.raises(ValidationError):
        q.heartbeat([job], lease_ms=lease_ms)

    assert db_snapshot() == before


@pytest.mark.parametrize(
    ("head", "bad_item", "refused"),
    [
        (["-1"], [], "lease_ms"),
        (["nan"], [], "lease_ms"),
        (["0"], ["a b", MADE_UP_TOKEN, "-1"], "id"),
        (["0"], ["", MADE_UP_TOKEN, "-1"], "id"),
        (["0"], ["ok-id", "t" * 65, "-1"], "token"),
        (["0"], ["ok-id", MADE_UP_TOKEN, "-2"], "started"),
        (["0"], ["ok-id", MADE_UP_TOKEN, "1.5"], "started"),
        (["0"], ["ok-id", MADE_UP_TOKEN], "n"),
    ],
)
def test_the_script_refuses_bad_arguments_and_writes_nothing(
    r: redis.Redis,
    q: Queue,
    db_snapshot: Snapshot,
    head: list[str],
    bad_item: list[Any],
    refused: str,
) -> None:
    """Every item is checked before the first write: a valid item first is not extended."""
    job = leased(q, options=LEASE)
    move_clock(r, 1_000)
    before = db_snapshot()
    items = 1 + (len(bad_item) > 0)

    reply = run_script(r, q, "heartbeat", [*head, items, job.id, job.token, "-1", *bad_item])

    assert reply == [b"bad_arg", refused.encode()]
    assert db_snapshot() == before


@pytest.mark.parametrize("count", ["0", "1001", "2", "x", ""])
def test_the_script_refuses_a_bad_item_count(
    r: redis.Redis, q: Queue, db_snapshot: Snapshot, count: str
) -> None:
    job = leased(q, options=LEASE)
    before = db_snapshot()

    reply = run_script(r, q, "heartbeat", ["0", count, job.id, job.token, "-1"])

    assert reply == [b"bad_arg", b"n"]
    assert db_snapshot() == before


def test_the_script_answers_ok_with_lost_ids_and_deadlines(r: redis.Redis, q: Queue) -> None:
    job = leased(q, options=LEASE)

    args = ["0", 2, job.id, job.token, "-1", "gone", MADE_UP_TOKEN, "-1"]
    reply = run_script(r, q, "heartbeat", args)

    assert reply == [b"ok", T0, [b"gone"], [T0 + LEASE_MS, 0]]
