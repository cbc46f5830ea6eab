"""lua/complete.lua through Queue.complete and Queue.complete_many, on a real Redis.

Covers every status the script replies with (ok, duplicate, lease_lost, not_found, bad_arg),
the fencing rules (only the current, unexpired lease completes a job, at most once), the
documented late-completion rule, retention trimming, and refusals that must change nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from scheduler import (
    ItemStatus,
    Job,
    JobNotFound,
    JobOptions,
    JobSpec,
    LeaseLost,
    Outcome,
    PayloadError,
    Queue,
    Retention,
    State,
    Status,
    ValidationError,
)
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


# -- accepted completions ----------------------------------------------------------------------


def test_accepted_completion_stores_the_result(r: redis.Redis, q: Queue) -> None:
    job = leased(q, {"n": 1}, options=JobOptions(keep_result_ms=60_000))
    move_clock(r, 10)

    assert q.complete(job, {"sum": 42}) is True

    info = q.inspect(job.id)
    assert info.state is State.COMPLETED
    assert info.outcome is Outcome.COMPLETED
    assert info.result == {"sum": 42}
    assert info.payload == {"n": 1}
    assert info.finished_ms == T0 + 10
    assert info.deadline_ms == 0
    assert info.token == job.token
    assert locations(r, q, job.id) == {"meta", "payload", "result", "completed"}
    assert r.zscore(q.ops.keys.key("completed"), job.id) == T0 + 10 + 60_000


def test_a_completion_just_before_the_deadline_is_accepted(r: redis.Redis, q: Queue) -> None:
    job = leased(q)
    move_clock(r, job.deadline_ms - T0 - 1)
    assert q.complete(job) is True
    assert q.inspect(job.id).state is State.COMPLETED


def test_a_repeat_with_the_same_token_is_a_duplicate_and_changes_nothing(
    r: redis.Redis, q: Queue, db_snapshot: Snapshot
) -> None:
    job = leased(q)
    assert q.complete(job, "first") is True
    before = db_snapshot()

    assert q.complete(job, "second") is False
    assert q.complete_many([(job, "third")]) == [ItemStatus(job.id, Status.DUPLICATE)]

    assert db_snapshot() == before
    assert q.inspect(job.id).result == "first"


# -- fencing -----------------------------------------------------------------------------------


def made_up_token(r: redis.Redis, q: Queue) -> tuple[str, str]:
    """A current lease, and a token of the right shape that no claim handed out."""
    job = leased(q)
    return job.id, MADE_UP_TOKEN


def another_jobs_token(r: redis.Redis, q: Queue) -> tuple[str, str]:
    """A current lease, and the token of a different job's lease."""
    job = leased(q)
    q.enqueue("other")
    other = claim_one(q, "worker-b")
    return job.id, other.token


def previous_attempts_token(r: redis.Redis, q: Queue) -> tuple[str, str]:
    """A job leased a second time after its first lease expired, and the first lease's token."""
    first = leased(q)
    move_clock(r, first.deadline_ms - T0)
    second = claim_one(q, "worker-b")
    assert (second.id, second.attempt) == (first.id, 2)
    return first.id, first.token


def token_of_an_unclaimed_job(r: redis.Redis, q: Queue) -> tuple[str, str]:
    """A waiting job that was never claimed, and some token."""
    return q.enqueue("never claimed").id, MADE_UP_TOKEN


@pytest.mark.parametrize(
    "stale_lease",
    [made_up_token, another_jobs_token, previous_attempts_token, token_of_an_unclaimed_job],
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
        q.complete((job_id, token), "late")
    assert (caught.value.queue, caught.value.job_id) == ("test", job_id)
    assert q.complete_many([((job_id, token), "late")]) == [ItemStatus(job_id, Status.LEASE_LOST)]

    assert db_snapshot() == before


def test_a_completion_after_the_deadline_is_refused_and_the_job_stays_active_until_reaped(
    r: redis.Redis, q: Queue, db_snapshot: Snapshot
) -> None:
    """The documented late-completion rule: at or past the deadline the lease is lost even
    though no reaper has run; the job stays active (and unchanged) until it is reaped."""
    job = leased(q)
    move_clock(r, job.deadline_ms - T0)
    before = db_snapshot()

    with pytest.raises(LeaseLost):
        q.complete(job, "too late")

    assert db_snapshot() == before
    info = q.inspect(job.id)
    assert (info.state, info.deadline_ms, info.result) == (State.ACTIVE, job.deadline_ms, None)
    assert r.zscore(q.ops.keys.key("active"), job.id) == job.deadline_ms

    assert q.reap().requeued == 1
    assert q.inspect(job.id).state is State.WAITING
    with pytest.raises(LeaseLost):
        q.complete(job, "still too late")


def test_a_paused_worker_cannot_complete_after_another_worker_took_over(
    r: redis.Redis, q: Queue
) -> None:
    """Worker A claims with a 1000 ms lease and pauses; at 1001 ms worker B claims the same job.
    A's completion is refused, B's accepted: exactly one completion."""
    job_id = q.enqueue("work").id
    lease_a = claim_one(q, "worker-a", lease_ms=1000)
    move_clock(r, 1001)
    lease_b = claim_one(q, "worker-b", lease_ms=1000)
    assert (lease_b.id, lease_b.attempt, lease_a.attempt) == (job_id, 2, 1)
    assert lease_b.token != lease_a.token

    with pytest.raises(LeaseLost):
        q.complete(lease_a, "from A")
    assert q.complete(lease_b, "from B") is True
    with pytest.raises(LeaseLost):
        q.complete(lease_a, "from A again")

    info = q.inspect(job_id)
    assert (info.state, info.result, info.worker, info.attempt) == (
        State.COMPLETED,
        "from B",
        "worker-b",
        2,
    )


# -- missing jobs and batches ------------------------------------------------------------------


def test_a_missing_job_is_not_found_and_nothing_changes(q: Queue, db_snapshot: Snapshot) -> None:
    q.enqueue("unrelated")
    before = db_snapshot()
    ghost = ("no-such-job", MADE_UP_TOKEN)

    assert q.complete_many([(ghost, None)]) == [ItemStatus("no-such-job", Status.NOT_FOUND)]
    with pytest.raises(JobNotFound) as caught:
        q.complete(ghost)
    assert caught.value.job_id == "no-such-job"

    assert db_snapshot() == before


def test_a_mixed_batch_gets_one_status_per_item_in_order(r: redis.Redis, q: Queue) -> None:
    for payload in ("done", "fresh", "other"):
        q.enqueue(payload)
    done, fresh, other = q.claim("worker-a", count=3).jobs
    assert q.complete(done, "earlier") is True

    statuses = q.complete_many(
        [
            ((fresh.id, fresh.token), "r1"),
            ((done.id, done.token), "r2"),
            (("ghost", MADE_UP_TOKEN), "r3"),
            ((other.id, fresh.token), "r4"),
            ((fresh.id, fresh.token), "r5"),
        ]
    )

    assert statuses == [
        ItemStatus(fresh.id, Status.OK),
        ItemStatus(done.id, Status.DUPLICATE),
        ItemStatus("ghost", Status.NOT_FOUND),
        ItemStatus(other.id, Status.LEASE_LOST),
        ItemStatus(fresh.id, Status.DUPLICATE),
    ]
    assert q.inspect(fresh.id).result == "r1"
    assert q.inspect(done.id).result == "earlier"
    assert q.inspect(other.id).state is State.ACTIVE


# -- retention ---------------------------------------------------------------------------------


def test_an_expired_completed_record_is_trimmed_by_a_later_completion(
    r: redis.Redis, q: Queue
) -> None:
    first = leased(q, "first", options=JobOptions(keep_result_ms=5_000))
    assert q.complete(first, "result 1") is True
    move_clock(r, 5_001)
    second = leased(q, "second")

    assert q.complete(second, "result 2") is True

    with pytest.raises(JobNotFound):
        q.inspect(first.id)
    assert locations(r, q, first.id) == set()
    assert q.inspect(second.id).result == "result 2"


def complete_in_turn(r: redis.Redis, q: Queue, count: int) -> list[str]:
    """Enqueue, claim and complete ``count`` jobs one by one, 1 ms apart; their ids in order."""
    ids = []
    for n in range(count):
        job = leased(q, n)
        assert q.complete(job, n) is True
        ids.append(job.id)
        move_clock(r, 1)
    return ids


def test_the_count_cap_keeps_the_newest_records_and_stubs_of_the_rest_for_the_window(
    r: redis.Redis, make_queue: Callable[..., Queue]
) -> None:
    """Over max_completed, the oldest records lose payload and result but keep a stub until the
    repeat window ends, so a repeated completion still gets "completed already" (not
    JobNotFound) and a repeated enqueue of the id creates nothing; then the stub goes."""
    q = make_queue("test", retention=Retention(max_completed=2, repeat_window_ms=10_000))
    jobs = []
    for n in range(5):
        jobs.append(leased(q, n, job_id=f"job-{n}"))
        assert q.complete(jobs[-1], n) is True
        move_clock(r, 1)
    ids = [job.id for job in jobs]

    assert r.zrange(q.ops.keys.key("completed"), 0, -1) == [i.encode() for i in ids[-2:]]
    assert [q.inspect(i).result for i in ids[-2:]] == [3, 4]
    for job in jobs[:-2]:
        assert locations(r, q, job.id) == {"meta"}
        assert q.complete(job, "again") is False
        assert q.enqueue("again", id=job.id).created is False
        info = q.inspect(job.id)
        assert (info.stub, info.state, info.token, info.payload, info.result) == (
            True,
            State.COMPLETED,
            job.token,
            None,
            None,
        )
    assert len(r.hget(q.ops.keys.key("meta"), ids[0]) or b"") <= 64
    move_clock(r, 10_000)
    q.reap()
    for trimmed in ids[:-2]:
        assert locations(r, q, trimmed) == set()


def test_a_job_keeping_its_result_for_less_than_the_window_gives_the_window_up(
    r: redis.Redis, make_queue: Callable[..., Queue]
) -> None:
    q = make_queue("test", retention=Retention(max_completed=0, repeat_window_ms=10_000))
    job = leased(q, options=JobOptions(keep_result_ms=2_000))
    assert q.complete(job) is True  # over the cap at once: a stub until 2 s, not 10 s
    assert r.zscore(q.ops.keys.key("stubs"), job.id) == T0 + 2_000
    move_clock(r, 2_000)
    q.reap()
    assert locations(r, q, job.id) == set()


def test_trimming_is_bounded_by_the_trim_batch(
    r: redis.Redis, make_queue: Callable[..., Queue]
) -> None:
    q = make_queue("test", defaults=JobOptions(keep_result_ms=1_000))
    ids = complete_in_turn(r, q, 5)
    move_clock(r, 2_000)
    small_steps = make_queue("test", retention=Retention(trim_batch=2))

    newest = leased(small_steps, "next")

    assert small_steps.complete(newest) is True

    survivors = [*ids[2:], newest.id]
    assert r.zrange(q.ops.keys.key("completed"), 0, -1) == [i.encode() for i in survivors]
    for trimmed in ids[:2]:
        assert locations(r, q, trimmed) == set()


def test_a_trim_batch_of_zero_trims_nothing(
    r: redis.Redis, make_queue: Callable[..., Queue]
) -> None:
    """trim_limit is "the most records to trim in this call": 0 must leave every record."""
    q = make_queue("test", retention=Retention(max_completed=1, trim_batch=0))
    ids = complete_in_turn(r, q, 2)

    assert r.zcard(q.ops.keys.key("completed")) == 2
    assert [q.inspect(i).result for i in ids] == [0, 1]


# -- refusals ----------------------------------------------------------------------------------


def unencodable_result(q: Queue, job: Job) -> None:
    """A result msgpack cannot encode."""
    q.complete(job, object())


def oversized_result(q: Queue, job: Job) -> None:
    """A result over the queue's payload size cap."""
    q.complete(job, "x" * (q.ops.max_payload_bytes + 1))


def empty_batch(q: Queue, job: Job) -> None:
    """A batch of no items."""
    q.complete_many([])


def batch_of_1001(q: Queue, job: Job) -> None:
    """A batch one item over the limit."""
    q.complete_many([(job, None)] * 1001)


def empty_token(q: Queue, job: Job) -> None:
    """A lease given as (id, "")."""
    q.complete((job.id, ""), None)


def invalid_job_id(q: Queue, job: Job) -> None:
    """A lease whose job id has a character ids may not hold."""
    q.complete(("bad id", job.token), None)


@pytest.mark.parametrize(
    ("bad_call", "error"),
    [
        (unencodable_result, PayloadError),
        (oversized_result, PayloadError),
        (empty_batch, ValidationError),
        (batch_of_1001, ValidationError),
        (empty_token, ValidationError),
        (invalid_job_id, ValidationError),
    ],
)
def test_bad_input_is_refused_before_anything_changes(
    q: Queue,
    db_snapshot: Snapshot,
    bad_call: Callable[[Queue, Job], None],
    error: type[Exception],
) -> None:
    job = leased(q)
    before = db_snapshot()

    with pytest.raises(error):
        bad_call(q, job)

    assert db_snapshot() == before
    assert q.inspect(job.id).state is State.ACTIVE


@pytest.mark.parametrize(
    ("head", "bad_item", "refused"),
    [
        (["-1", "100", "60000"], [], "max_completed"),
        (["1000000001", "100", "60000"], [], "max_completed"),
        (["100", "1001", "60000"], [], "trim_limit"),
        (["100", "1.5", "60000"], [], "trim_limit"),
        (["100", "100", "0"], [], "window_ms"),
        (["100", "100", "60000"], ["bad id", MADE_UP_TOKEN, b"\xc0"], "id"),
        (["100", "100", "60000"], ["ok-id", "t" * 65, b"\xc0"], "token"),
        (["100", "100", "60000"], ["ok-id", MADE_UP_TOKEN], "n"),
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
    """Every item is checked before the first write: a valid item first is not completed."""
    job = leased(q)
    before = db_snapshot()
    items = 1 + (len(bad_item) > 0)
    args = [*head, items, job.id, job.token, b"\xc0", *bad_item]

    reply = run_script(r, q, "complete", args)

    assert reply == [b"bad_arg", refused.encode()]
    assert db_snapshot() == before


@pytest.mark.parametrize("count", ["0", "1001", "2", "x"])
def test_the_script_refuses_a_bad_item_count(
    r: redis.Redis, q: Queue, db_snapshot: Snapshot, count: str
) -> None:
    job = leased(q)
    before = db_snapshot()

    args = ["100", "100", "60000", count, job.id, job.token, b"\xc0"]
    reply = run_script(r, q, "complete", args)

    assert reply == [b"bad_arg", b"n"]
    assert db_snapshot() == before


def test_a_full_batch_of_1000_is_claimed_and_completed_in_one_call_each(q: Queue) -> None:
    q.enqueue_many([JobSpec(i, f"job-{i}") for i in range(1000)])
    claimed = q.claim("worker-a", count=1000)
    assert len(claimed.jobs) == 1000
    assert q.stats().counts[State.ACTIVE] == 1000
    statuses = q.complete_many([(job, job.payload * 2) for job in claimed.jobs])
    assert [s.status for s in statuses] == [Status.OK] * 1000
    assert q.stats().counts[State.COMPLETED] == 1000
    assert q.inspect("job-999").result == 1998
