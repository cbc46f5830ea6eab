"""lua/fail.lua through Queue.fail, on a real Redis.

Covers every status the script replies with (ok with outcome retry or dead, duplicate,
lease_lost, not_found, bad_arg): retry backoff and its jitter bounds, dead-lettering after
max_attempts or a non-retryable failure, fencing, retention of dead records, and refusals that
must change nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from scheduler import (
    Failed,
    Job,
    JobNotFound,
    JobOptions,
    JobSpec,
    LeaseLost,
    Outcome,
    Queue,
    Retention,
    State,
    ValidationError,
)
from scheduler._policy import delay_bounds_ms
from scheduler.testing import pin_clock
from tests.integration.helpers import (
    MADE_UP_TOKEN,
    T0,
    Snapshot,
    claim_one,
    leased,
    locations,
    move_clock,
    run_script,
)

pytestmark = pytest.mark.usefixtures("pinned_clock")


# -- retries -----------------------------------------------------------------------------------


def test_a_retryable_failure_is_delayed_by_the_backoff_within_the_jitter_bounds(
    r: redis.Redis, make_queue: Callable[..., Queue]
) -> None:
    options = JobOptions(backoff_ms=1_000, jitter=0.5, max_attempts=3)
    q = make_queue("test", defaults=options)
    q.enqueue_many([JobSpec(n) for n in range(50)])
    for attempt in (1, 2):
        claimed = q.claim("worker-a", count=50)
        assert {job.attempt for job in claimed.jobs} == {attempt}
        low, high = delay_bounds_ms(options, attempt)
        delays = [q.fail(job, "boom").run_at_ms - claimed.now_ms for job in claimed.jobs]
        assert all(low <= delay <= high for delay in delays), (low, high, delays)
        assert len(set(delays)) > 1, "the jitter draws the same delay every time"
        move_clock(r, high)


def test_a_retried_job_is_delayed_until_its_run_at_time(r: redis.Redis, q: Queue) -> None:
    job = leased(q, options=JobOptions(backoff_ms=1_000, jitter=0, max_attempts=3))
    move_clock(r, 7)

    failed = q.fail(job, "boom")

    assert failed == Failed(Outcome.RETRY, T0 + 7 + 1_000)
    info = q.inspect(job.id)
    assert (info.state, info.outcome, info.error, info.attempt) == (
        State.DELAYED,
        Outcome.RETRY,
        "boom",
        1,
    )
    assert (info.ready_ms, info.deadline_ms) == (T0 + 1_007, 0)
    assert locations(r, q, job.id) == {"meta", "payload", "error", "delayed"}
    assert r.zscore(q.ops.keys.key("delayed"), job.id) == T0 + 1_007
    assert q.claim("worker-b").jobs == []
    move_clock(r, 1_000)
    assert claim_one(q, "worker-b").attempt == 2


def test_the_backoff_doubles_per_attempt_up_to_its_cap(r: redis.Redis, q: Queue) -> None:
    options = JobOptions(backoff_ms=1_000, backoff_max_ms=3_000, jitter=0, max_attempts=5)
    job_id = q.enqueue("work", options=options).id
    delays = []
    for attempt in range(1, 5):
        claimed = q.claim("worker-a")
        assert [(job.id, job.attempt) for job in claimed.jobs] == [(job_id, attempt)]
        failed = q.fail(claimed.jobs[0], f"attempt {attempt}")
        delays.append(failed.run_at_ms - claimed.now_ms)
        move_clock(r, delays[-1])
    assert delays == [1_000, 2_000, 3_000, 3_000]


@pytest.mark.parametrize(
    ("options", "delay_ms"),
    [
        (JobOptions(backoff_ms=0), None),
        (JobOptions(backoff_ms=5_000), 0),
    ],
    ids=["no-backoff", "delay-zero"],
)
def test_a_retry_without_delay_goes_straight_to_waiting(
    r: redis.Redis, q: Queue, options: JobOptions, delay_ms: int | None
) -> None:
    job = leased(q, options=options)

    assert q.fail(job, "boom", delay_ms=delay_ms) == Failed(Outcome.RETRY, T0)

    assert q.inspect(job.id).state is State.WAITING
    assert locations(r, q, job.id) == {"meta", "payload", "error", "ready"}
    again = claim_one(q, "worker-b")
    assert (again.id, again.attempt) == (job.id, 2)


def test_delay_ms_overrides_the_backoff(r: redis.Redis, q: Queue) -> None:
    job = leased(q, options=JobOptions(backoff_ms=60_000, jitter=0.5))

    assert q.fail(job, "boom", delay_ms=250) == Failed(Outcome.RETRY, T0 + 250)
    assert r.zscore(q.ops.keys.key("delayed"), job.id) == T0 + 250


# -- dead letters ------------------------------------------------------------------------------


def assert_dead(r: redis.Redis, q: Queue, job_id: str, error: str) -> None:
    """The job is dead with ``error`` kept, and in no other structure."""
    info = q.inspect(job_id)
    assert (info.state, info.outcome, info.error, info.deadline_ms) == (
        State.DEAD,
        Outcome.DEAD,
        error,
        0,
    )
    assert locations(r, q, job_id) == {"meta", "payload", "error", "dead"}
    expiry = info.finished_ms + info.options.keep_dead_ms
    assert r.zscore(q.ops.keys.key("dead"), job_id) == expiry


def test_the_last_attempt_failing_dead_letters_the_job(r: redis.Redis, q: Queue) -> None:
    job = leased(q, options=JobOptions(max_attempts=2, backoff_ms=0))
    assert q.fail(job, "first").outcome is Outcome.RETRY
    second = claim_one(q)
    assert second.attempt == 2
    move_clock(r, 5)

    assert q.fail(second, "second", delay_ms=1_000) == Failed(Outcome.DEAD, 0)

    assert_dead(r, q, job.id, "second")
    assert q.inspect(job.id).finished_ms == T0 + 5


def test_a_non_retryable_failure_dead_letters_on_the_first_attempt(
    r: redis.Redis, q: Queue
) -> None:
    job = leased(q, options=JobOptions(max_attempts=5))

    assert q.fail(job, "fatal", retryable=False) == Failed(Outcome.DEAD, 0)

    assert_dead(r, q, job.id, "fatal")
    assert q.inspect(job.id).attempt == 1


def test_a_dead_job_is_never_claimed_again(r: redis.Redis, q: Queue) -> None:
    job = leased(q)
    q.fail(job, "fatal", retryable=False)

    for _ in range(3):
        assert q.claim("worker-b").jobs == []
        assert q.reap().requeued == 0
        move_clock(r, 3_600_000)
    assert q.inspect(job.id).state is State.DEAD


def end_by_failing(r: redis.Redis, q: Queue, job: Job) -> None:
    """End a lease with a retryable failure, then move the clock to when the retry is due."""
    failed = q.fail(job, f"failed attempt {job.attempt}")
    if failed.outcome is Outcome.RETRY:
        pin_clock(r, "test", failed.run_at_ms)


def end_by_expiring(r: redis.Redis, q: Queue, job: Job) -> None:
    """End a lease by letting it run out (an expiry counts as an attempt)."""
    pin_clock(r, "test", job.deadline_ms)


@pytest.mark.parametrize(
    ("endings", "last_error"),
    [
        ([end_by_failing] * 4, "failed attempt 4"),
        (
            [end_by_failing, end_by_expiring, end_by_failing, end_by_expiring],
            "lease expired on attempt 4 of 4 (worker worker-a)",
        ),
    ],
    ids=["all-fail", "fail-and-expire"],
)
def test_attempts_never_exceed_max_attempts(
    r: redis.Redis,
    q: Queue,
    endings: list[Callable[[redis.Redis, Queue, Job], None]],
    last_error: str,
) -> None:
    job_id = q.enqueue("poison", options=JobOptions(max_attempts=4, jitter=0)).id
    attempts = []
    for ending in endings + endings:
        claimed = q.claim("worker-a").jobs
        if not claimed:
            break
        attempts.append(claimed[0].attempt)
        ending(r, q, claimed[0])

    assert attempts == [1, 2, 3, 4]
    assert q.claim("worker-a").jobs == []
    info = q.inspect(job_id)
    assert (info.state, info.attempt, info.error) == (State.DEAD, 4, last_error)


# -- repeats and fencing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "retryable"),
    [
        (JobOptions(backoff_ms=1_000), True),
        (JobOptions(backoff_ms=0), True),
        (JobOptions(), False),
    ],
    ids=["retry-delayed", "retry-waiting", "dead"],
)
def test_a_repeat_with_the_same_token_returns_the_first_outcome_and_changes_nothing(
    r: redis.Redis,
    q: Queue,
    db_snapshot: Snapshot,
    options: JobOptions,
    retryable: bool,
) -> None:
    job = leased(q, options=options)
    first = q.fail(job, "first", retryable=retryable)
    move_clock(r, 10)
    before = db_snapshot()

    repeat = q.fail(job, "second", retryable=not retryable, delay_ms=5)

    assert repeat == Failed(first.outcome, first.run_at_ms, repeated=True)
    assert db_snapshot() == before
    assert q.inspect(job.id).error == "first"


def made_up_token(r: redis.Redis, q: Queue) -> tuple[str, str]:
    """A current lease, and a token of the right shape that no claim handed out."""
    return leased(q).id, MADE_UP_TOKEN


def previous_attempts_token(r: redis.Redis, q: Queue) -> tuple[str, str]:
    """A job failed, retried and leased again, and the first lease's token."""
    first = leased(q, options=JobOptions(backoff_ms=0))
    q.fail(first, "boom")
    assert claim_one(q, "worker-b").attempt == 2
    return first.id, first.token


def completed_jobs_token(r: redis.Redis, q: Queue) -> tuple[str, str]:
    """A completed job, and the token that completed it."""
    job = leased(q)
    assert q.complete(job, "done") is True
    return job.id, job.token


def expired_token(r: redis.Redis, q: Queue) -> tuple[str, str]:
    """A lease whose deadline has come (not yet reaped), and its token."""
    job = leased(q)
    pin_clock(r, "test", job.deadline_ms)
    return job.id, job.token


@pytest.mark.parametrize(
    "stale_lease",
    [made_up_token, previous_attempts_token, completed_jobs_token, expired_token],
)
def test_a_token_that_is_not_the_current_lease_is_refused(
    r: redis.Redis,
    q: Queue,
    db_snapshot: Snapshot,
    stale_lease: Callable[[redis.Redis, Queue], tuple[str, str]],
) -> None:
    job_id, token = stale_lease(r, q)
    before = db_snapshot()

    with pytest.raises(LeaseLost) as caught:
        q.fail((job_id, token), "late")

    assert (caught.value.queue, caught.value.job_id) == ("test", job_id)
    assert db_snapshot() == before


def test_a_failure_after_the_deadline_leaves_the_job_active_until_reaped(
    r: redis.Redis, q: Queue
) -> None:
    job_id, token = expired_token(r, q)

    with pytest.raises(LeaseLost):
        q.fail((job_id, token), "late", retryable=False)

    assert q.inspect(job_id).state is State.ACTIVE
    assert q.reap().requeued == 1
    assert q.inspect(job_id).state is State.WAITING


def test_a_missing_job_is_not_found_and_nothing_changes(q: Queue, db_snapshot: Snapshot) -> None:
    leased(q)
    before = db_snapshot()

    with pytest.raises(JobNotFound) as caught:
        q.fail(("no-such-job", MADE_UP_TOKEN), "boom")

    assert caught.value.job_id == "no-such-job"
    assert db_snapshot() == before


# -- retention ---------------------------------------------------------------------------------


def test_the_count_cap_keeps_the_newest_dead_records_and_stubs_of_the_rest_for_the_window(
    r: redis.Redis, make_queue: Callable[..., Queue]
) -> None:
    """A repeated fail within the repeat window finds the first outcome even when count
    trimming took the record: the stub keeps the token and the outcome."""
    q = make_queue("test", retention=Retention(max_dead=2, repeat_window_ms=10_000))
    jobs = []
    for n in range(5):
        job = leased(q, n)
        q.fail(job, f"fatal {n}", retryable=False)
        jobs.append(job)
        move_clock(r, 1)
    ids = [job.id for job in jobs]

    assert r.zrange(q.ops.keys.key("dead"), 0, -1) == [i.encode() for i in ids[-2:]]
    assert [q.inspect(i).error for i in ids[-2:]] == ["fatal 3", "fatal 4"]
    for job in jobs[:-2]:
        assert locations(r, q, job.id) == {"meta"}
        again = q.fail(job, "again", retryable=False)
        assert (again.outcome, again.repeated) == (Outcome.DEAD, True)
    move_clock(r, 10_000)
    q.reap()
    for trimmed in ids[:-2]:
        assert locations(r, q, trimmed) == set()


def test_an_expired_dead_record_is_trimmed_by_a_later_retry(r: redis.Redis, q: Queue) -> None:
    dead = leased(q, "dead", options=JobOptions(keep_dead_ms=1_000))
    q.fail(dead, "fatal", retryable=False)
    move_clock(r, 1_001)
    retried = leased(q, "retried")

    assert q.fail(retried, "transient").outcome is Outcome.RETRY

    with pytest.raises(JobNotFound):
        q.inspect(dead.id)
    assert locations(r, q, dead.id) == set()


def test_a_long_error_text_is_kept_up_to_64_kib(q: Queue) -> None:
    job = leased(q)
    q.fail(job, "x" * 70_000, retryable=False)
    assert q.inspect(job.id).error == "x" * 65_536


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "kwargs"),
    [
        (b"bytes", {}),
        (None, {}),
        (5, {}),
        ("boom", {"delay_ms": -5}),
        ("boom", {"delay_ms": True}),
        ("boom", {"delay_ms": 100 * 365 * 24 * 3600 * 1000 + 1}),
    ],
    ids=["bytes-error", "none-error", "int-error", "negative-delay", "bool-delay", "huge-delay"],
)
def test_bad_input_is_refused_before_anything_changes(
    q: Queue, db_snapshot: Snapshot, error: Any, kwargs: dict[str, Any]
) -> None:
    job = leased(q)
    before = db_snapshot()

    with pytest.raises(ValidationError):
        q.fail(job, error, **kwargs)

    assert db_snapshot() == before


def test_a_lease_with_an_empty_token_is_refused(q: Queue, db_snapshot: Snapshot) -> None:
    job = leased(q)
    before = db_snapshot()
    with pytest.raises(ValidationError):
        q.fail((job.id, ""), "boom")
    assert db_snapshot() == before


@pytest.mark.parametrize(
    ("position", "bad_value", "refused"),
    [
        (0, "bad id", "id"),
        (0, "", "id"),
        (1, "t" * 65, "token"),
        (2, "e" * 65_537, "error"),
        (3, "2", "retryable"),
        (3, "yes", "retryable"),
        (4, "-2", "delay_ms"),
        (4, "1e3", "delay_ms"),
        (5, "-1", "max_dead"),
        (6, "1001", "trim_limit"),
        (7, "0", "window_ms"),
        (8, "extra", "argv"),
    ],
)
def test_the_script_refuses_bad_arguments_and_writes_nothing(
    r: redis.Redis,
    q: Queue,
    db_snapshot: Snapshot,
    position: int,
    bad_value: str,
    refused: str,
) -> None:
    job = leased(q)
    before = db_snapshot()
    args: list[Any] = [job.id, job.token, "boom", "0", "-1", "100", "100", "60000"]
    if position == len(args):
        args.append(bad_value)
    else:
        args[position] = bad_value

    reply = run_script(r, q, "fail", args)

    assert reply == [b"bad_arg", refused.encode()]
    assert db_snapshot() == before
