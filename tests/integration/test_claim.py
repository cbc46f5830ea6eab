"""lua/claim.lua through Queue.claim, on a real Redis.

Covers every status the script answers with (ok, empty, duplicate, bad_arg): leases handed out
(payload, attempt, a fresh token, a deadline from the server's clock), the idempotent repeat of a
claim id, the maintenance a claim does first (promoting due delayed jobs, reaping expired leases,
dead-lettering a job whose attempts are used up), the attempt bound, token uniqueness, and bad
input refused before anything is sent or written.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from scheduler import (
    Claimed,
    JobOptions,
    JobSpec,
    LeaseLost,
    Outcome,
    Queue,
    Retention,
    State,
    ValidationError,
)
from scheduler.testing import reset_clock
from tests.integration.helpers import T0, Snapshot, claim_one, move_clock, run_script

DEFAULT_LEASE_MS = JobOptions().lease_ms

TOKEN_PATTERN = re.compile(r"(\d+)-[0-9a-f]{16}")
"""A lease token: the attempt number, a dash and a 64-bit random nonce in hex."""

pytestmark = pytest.mark.usefixtures("pinned_clock")


def enqueue_jobs(q: Queue, count: int, *, options: JobOptions | None = None) -> list[str]:
    """Enqueue ``count`` jobs ``job-0``.. (payload ``{"n": i}``) in one call; returns the ids."""
    ids = [f"job-{i}" for i in range(count)]
    q.enqueue_many([JobSpec({"n": i}, job_id, options) for i, job_id in enumerate(ids)])
    return ids


def counts(q: Queue) -> dict[State, int]:
    """The number of jobs in each state."""
    return q.stats().counts


def leases(claimed: Claimed) -> list[tuple[str, int, str, int]]:
    """Each leased job as (id, attempt, token, deadline), in reply order."""
    return [(job.id, job.attempt, job.token, job.deadline_ms) for job in claimed.jobs]


# -- ok: leases ----------------------------------------------------------------------------------


def test_a_claim_leases_waiting_jobs_with_payload_attempt_token_and_deadline(q: Queue) -> None:
    enqueue_jobs(q, 2)

    claimed = q.claim("worker-a", count=2)

    assert claimed.now_ms == T0
    assert claimed.repeated is False
    assert [job.id for job in claimed.jobs] == ["job-0", "job-1"]
    assert [job.payload for job in claimed.jobs] == [{"n": 0}, {"n": 1}]
    for job in claimed.jobs:
        assert job.queue == "test"
        assert job.attempt == 1
        assert TOKEN_PATTERN.fullmatch(job.token)
        assert job.deadline_ms == claimed.now_ms + DEFAULT_LEASE_MS


def test_the_job_record_holds_the_lease(r: redis.Redis, q: Queue) -> None:
    enqueue_jobs(q, 1)

    job = claim_one(q, "worker-a")

    info = q.inspect(job.id)
    assert info.state is State.ACTIVE
    assert (info.attempt, info.token, info.deadline_ms) == (1, job.token, job.deadline_ms)
    assert (info.worker, info.leased_ms, info.outcome) == ("worker-a", T0, Outcome.RUNNING)
    assert info.started_ms == 0  # leased, its handler not begun (heartbeat reports that)
    assert r.zscore(q.ops.keys.key("active"), job.id) == job.deadline_ms
    assert r.zscore(q.ops.keys.key("ready"), job.id) is None


def test_a_claim_takes_at_most_count_jobs(q: Queue) -> None:
    enqueue_jobs(q, 5)

    first = q.claim("worker-a", count=3)
    second = q.claim("worker-b", count=10)

    assert [job.id for job in first.jobs] == ["job-0", "job-1", "job-2"]
    assert [job.id for job in second.jobs] == ["job-3", "job-4"]
    assert counts(q)[State.ACTIVE] == 5
    assert counts(q)[State.WAITING] == 0


def test_the_deadline_follows_each_jobs_own_lease(q: Queue) -> None:
    q.enqueue("short", id="short", options=JobOptions(lease_ms=1_500, priority=1))
    q.enqueue("long", id="long", options=JobOptions(lease_ms=90_000))

    claimed = q.claim("worker-a", count=2)

    assert [(job.id, job.deadline_ms) for job in claimed.jobs] == [
        ("short", T0 + 1_500),
        ("long", T0 + 90_000),
    ]


def test_a_lease_ms_override_sets_every_deadline(q: Queue) -> None:
    enqueue_jobs(q, 2, options=JobOptions(lease_ms=90_000))

    claimed = q.claim("worker-a", count=2, lease_ms=2_500)

    assert [job.deadline_ms for job in claimed.jobs] == [T0 + 2_500, T0 + 2_500]
    assert q.inspect("job-0").deadline_ms == T0 + 2_500
    assert q.inspect("job-0").options.lease_ms == 90_000


def test_the_deadline_is_taken_from_the_servers_clock(r: redis.Redis, q: Queue) -> None:
    reset_clock(r, "test")
    enqueue_jobs(q, 1)
    before_ms = int(time.time() * 1000)

    claimed = q.claim("worker-a", lease_ms=4_000)

    after_ms = int(time.time() * 1000)
    assert before_ms - 1_000 <= claimed.now_ms <= after_ms + 1_000  # a local server
    assert claimed.jobs[0].deadline_ms == claimed.now_ms + 4_000


# -- empty ---------------------------------------------------------------------------------------


def test_an_empty_queue_gives_no_jobs_and_no_next_time(q: Queue, db_snapshot: Snapshot) -> None:
    before = db_snapshot()

    claimed = q.claim("worker-a", count=10)

    assert claimed == Claimed([], T0, repeated=False, next_ms=None)
    assert db_snapshot() == before


def test_an_empty_claim_names_the_earliest_delayed_run_at_or_lease_deadline(q: Queue) -> None:
    q.enqueue("x", id="delayed", options=JobOptions(delay_ms=8_000))
    q.enqueue("x", id="leased", options=JobOptions(lease_ms=5_000))
    claim_one(q)

    claimed = q.claim("worker-b")

    assert claimed.jobs == []
    assert claimed.next_ms == T0 + 5_000


def test_an_empty_claim_records_no_claim_id(r: redis.Redis, q: Queue) -> None:
    q.claim("worker-a", claim_id="claim-1")
    enqueue_jobs(q, 1)

    again = q.claim("worker-a", claim_id="claim-1")

    assert again.repeated is False
    assert [job.id for job in again.jobs] == ["job-0"]


# -- duplicate: a repeated claim id ----------------------------------------------------------------


def test_a_repeated_claim_id_returns_the_same_leases_and_changes_nothing(
    q: Queue, db_snapshot: Snapshot
) -> None:
    enqueue_jobs(q, 4)
    first = q.claim("worker-a", count=2, claim_id="claim-1")
    before = db_snapshot()

    repeat = q.claim("worker-a", count=2, claim_id="claim-1")

    assert repeat.repeated is True
    assert leases(repeat) == leases(first)
    assert [job.payload for job in repeat.jobs] == [{"n": 0}, {"n": 1}]
    assert db_snapshot() == before
    assert counts(q)[State.ACTIVE] == 2
    assert counts(q)[State.WAITING] == 2


def test_a_repeated_claim_id_with_other_arguments_still_leases_nothing_new(
    q: Queue, db_snapshot: Snapshot
) -> None:
    enqueue_jobs(q, 4)
    first = q.claim("worker-a", count=1, claim_id="claim-1")
    before = db_snapshot()

    repeat = q.claim("worker-b", count=3, claim_id="claim-1", lease_ms=1)

    assert repeat.repeated is True
    assert leases(repeat) == leases(first)
    assert db_snapshot() == before


def test_a_repeated_claim_id_omits_a_job_completed_since(q: Queue) -> None:
    enqueue_jobs(q, 2)
    first = q.claim("worker-a", count=2, claim_id="claim-1")
    assert q.complete(first.jobs[0], "done")

    repeat = q.claim("worker-a", count=2, claim_id="claim-1")

    assert repeat.repeated is True
    assert leases(repeat) == leases(first)[1:]


def test_a_repeated_claim_id_after_its_leases_expired_leases_nothing(
    r: redis.Redis, q: Queue, db_snapshot: Snapshot
) -> None:
    enqueue_jobs(q, 2)
    q.claim("worker-a", count=1, claim_id="claim-1", lease_ms=1_000)
    move_clock(r, 1_000)
    before = db_snapshot()

    repeat = q.claim("worker-a", count=1, claim_id="claim-1")

    assert (repeat.repeated, repeat.jobs) == (True, [])
    assert db_snapshot() == before


def test_a_repeated_claim_id_shows_a_deadline_extended_by_heartbeat(
    r: redis.Redis, q: Queue
) -> None:
    enqueue_jobs(q, 1)
    job = q.claim("worker-a", claim_id="claim-1", lease_ms=1_000).jobs[0]
    move_clock(r, 500)
    q.heartbeat([job], lease_ms=1_000)

    repeat = q.claim("worker-a", claim_id="claim-1")

    assert leases(repeat) == [(job.id, 1, job.token, T0 + 1_500)]


def test_a_claim_id_is_remembered_for_the_repeat_window_whatever_the_lease(
    r: redis.Redis, make_queue: Callable[..., Queue]
) -> None:
    """A claim id is forgotten once the repeat window has passed, not at its leases' last
    deadline: memory grows with the claim rate, never with the lease length."""
    q = make_queue("test", retention=Retention(repeat_window_ms=5_000))
    enqueue_jobs(q, 3)
    first = q.claim("worker-a", claim_id="claim-1", lease_ms=3_600_000).jobs
    assert r.zscore(q.ops.keys.key("request_exp"), "claim-1") == T0 + 5_000
    move_clock(r, 4_999)
    assert q.claim("worker-a", claim_id="claim-1").jobs == first  # still a repeat
    move_clock(r, 1)
    q.claim("worker-b", count=1)  # maintenance: forgets claim-1 (job-1 is leased by it)

    reused = q.claim("worker-a", claim_id="claim-1")

    assert reused.repeated is False
    assert [(job.id, job.attempt) for job in reused.jobs] == [("job-2", 1)]


# -- maintenance: promotion and reaping ------------------------------------------------------------


def test_a_claim_promotes_due_delayed_jobs_first(r: redis.Redis, q: Queue) -> None:
    q.enqueue("later", id="delayed", options=JobOptions(delay_ms=3_000, priority=1))
    q.enqueue("now", id="waiting")

    move_clock(r, 3_000)
    claimed = q.claim("worker-a", count=2)

    assert [job.id for job in claimed.jobs] == ["delayed", "waiting"]
    assert claimed.jobs[0].payload == "later"
    assert q.inspect("delayed").state is State.ACTIVE


def test_a_claim_reaps_an_expired_lease_and_hands_the_job_on(r: redis.Redis, q: Queue) -> None:
    enqueue_jobs(q, 1)
    old = claim_one(q, "worker-a", lease_ms=1_000)

    move_clock(r, 1_001)
    new = claim_one(q, "worker-b")

    assert new.id == old.id
    assert new.attempt == 2
    assert new.token != old.token
    assert TOKEN_PATTERN.fullmatch(new.token)
    assert new.deadline_ms == T0 + 1_001 + DEFAULT_LEASE_MS
    info = q.inspect(old.id)
    assert (info.state, info.worker, info.token) == (State.ACTIVE, "worker-b", new.token)
    with pytest.raises(LeaseLost):
        q.complete(old, "late")
    assert q.complete(new, "on time")
    assert q.inspect(old.id).result == "on time"


def test_a_lease_expires_exactly_at_its_deadline(r: redis.Redis, q: Queue) -> None:
    enqueue_jobs(q, 1)
    old = claim_one(q, "worker-a", lease_ms=1_000)

    move_clock(r, 999)
    assert q.claim("worker-b").jobs == []
    move_clock(r, 1)
    assert claim_one(q, "worker-b").attempt == 2
    assert q.inspect(old.id).worker == "worker-b"


def test_an_expired_lease_of_a_job_at_max_attempts_goes_to_dead(r: redis.Redis, q: Queue) -> None:
    q.enqueue("x", id="fragile", options=JobOptions(max_attempts=1, keep_dead_ms=60_000))
    claim_one(q, "worker-a", lease_ms=1_000)

    move_clock(r, 1_001)
    claimed = q.claim("worker-b")

    assert claimed.jobs == []
    info = q.inspect("fragile")
    assert (info.state, info.outcome, info.attempt) == (State.DEAD, Outcome.DEAD, 1)
    assert info.finished_ms == T0 + 1_001
    assert info.error is not None
    assert "lease expired" in info.error and "worker-a" in info.error
    assert r.zscore(q.ops.keys.key("dead"), "fragile") == T0 + 1_001 + 60_000
    assert r.zscore(q.ops.keys.key("active"), "fragile") is None


def test_attempts_never_exceed_max_attempts(r: redis.Redis, q: Queue) -> None:
    q.enqueue("x", id="crasher", options=JobOptions(max_attempts=3, lease_ms=1_000))
    attempts = []

    for worker in ("worker-a", "worker-b", "worker-c", "worker-d"):
        attempts += [job.attempt for job in q.claim(worker).jobs]
        move_clock(r, 1_000)
    q.claim("worker-e")

    assert attempts == [1, 2, 3]
    info = q.inspect("crasher")
    assert (info.state, info.attempt) == (State.DEAD, 3)
    assert info.error is not None and "3 of 3" in info.error


def test_maintenance_zero_leaves_due_delayed_jobs_alone(r: redis.Redis, q: Queue) -> None:
    q.enqueue("x", id="delayed", options=JobOptions(delay_ms=1_000))
    move_clock(r, 1_000)

    skipped = q.claim("worker-a", maintenance=0)

    assert skipped.jobs == []
    assert skipped.next_ms is None  # due already: only a claim with maintenance or a reap acts
    assert q.inspect("delayed").state is State.DELAYED
    assert [job.id for job in q.claim("worker-a", maintenance=1).jobs] == ["delayed"]


def test_maintenance_zero_leaves_expired_leases_alone(r: redis.Redis, q: Queue) -> None:
    enqueue_jobs(q, 1)
    old = claim_one(q, "worker-a", lease_ms=1_000)
    move_clock(r, 1_001)

    skipped = q.claim("worker-b", maintenance=0)

    assert skipped.jobs == []
    info = q.inspect(old.id)
    assert (info.state, info.token, info.attempt) == (State.ACTIVE, old.token, 1)
    assert claim_one(q, "worker-b").attempt == 2


def test_maintenance_is_bounded_by_its_limit(r: redis.Redis, q: Queue) -> None:
    q.enqueue_many(
        [JobSpec(i, f"delayed-{i}", JobOptions(delay_ms=1_000)) for i in range(5)],
    )
    move_clock(r, 1_000)

    claimed = q.claim("worker-a", count=10, maintenance=2)

    assert [job.id for job in claimed.jobs] == ["delayed-0", "delayed-1"]
    assert counts(q)[State.DELAYED] == 3


# -- tokens ----------------------------------------------------------------------------------------


def test_tokens_are_unique_across_many_claims(q: Queue) -> None:
    ids = enqueue_jobs(q, 200)
    tokens = []

    for i in range(100):
        tokens += [job.token for job in q.claim(f"worker-{i % 7}").jobs]
    tokens += [job.token for job in q.claim("worker-batch", count=100).jobs]

    assert len(tokens) == len(ids)
    assert len(set(tokens)) == len(tokens)
    assert all(TOKEN_PATTERN.fullmatch(token) for token in tokens)


def test_each_attempt_of_one_job_gets_a_fresh_token(r: redis.Redis, q: Queue) -> None:
    q.enqueue("x", id="job-0", options=JobOptions(max_attempts=50, lease_ms=10))
    tokens = []

    for _ in range(50):
        job = claim_one(q)
        tokens.append(job.token)
        move_clock(r, 10)

    assert len(set(tokens)) == 50
    assert [int(token.split("-")[0]) for token in tokens] == list(range(1, 51))


# -- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"worker_id": "a b"},
        {"worker_id": "x|y"},
        {"worker_id": ""},
        {"worker_id": "w" * 129},
        {"claim_id": "a b"},
        {"claim_id": "c,d"},
        {"claim_id": ""},
        {"claim_id": "c" * 129},
        {"count": 0},
        {"count": 1001},
        {"count": True},
        {"lease_ms": 0},
        {"maintenance": -1},
        {"maintenance": 1001},
    ],
    ids=repr,
)
def test_bad_input_is_refused_before_anything_is_sent(
    r: redis.Redis, q: Queue, db_snapshot: Snapshot, kwargs: dict[str, Any]
) -> None:
    enqueue_jobs(q, 2)
    claim_one(q, lease_ms=1_000)
    move_clock(r, 1_001)  # an expired lease: a claim that ran would reap it
    before = db_snapshot()
    worker_id = kwargs.get("worker_id", "worker-a")
    options = {name: value for name, value in kwargs.items() if name != "worker_id"}

    with pytest.raises(ValidationError):
        q.claim(worker_id, **options)

    assert db_snapshot() == before


VALID_ARGS = ["worker-a", "claim-1", "1", "0", "100", "4194304", "60000"]
"""claim.lua's ARGV for a valid claim: worker, claim id, count, lease_ms, maintenance,
max_bytes, window_ms."""


def args_with(position: int, value: Any) -> list[Any]:
    """:data:`VALID_ARGS` with one argument replaced."""
    args = list(VALID_ARGS)
    args[position] = value
    return args


@pytest.mark.parametrize(
    ("args", "refused"),
    [
        (args_with(0, "a b"), "worker_id"),
        (args_with(0, ""), "worker_id"),
        (args_with(1, "x|y"), "claim_id"),
        (args_with(1, "c" * 129), "claim_id"),
        (args_with(2, "0"), "count"),
        (args_with(2, "1001"), "count"),
        (args_with(2, "nan"), "count"),
        (args_with(3, "-1"), "lease_ms"),
        (args_with(3, "1.5"), "lease_ms"),
        (args_with(4, "1001"), "maintenance"),
        (args_with(5, "0"), "max_bytes"),
        (args_with(5, str(2**30 + 1)), "max_bytes"),
        (args_with(6, "0"), "window_ms"),
        ([*VALID_ARGS, "extra"], "argv"),
    ],
)
def test_the_script_refuses_bad_arguments_and_writes_nothing(
    r: redis.Redis, q: Queue, db_snapshot: Snapshot, args: list[Any], refused: str
) -> None:
    enqueue_jobs(q, 2)
    claim_one(q, lease_ms=1_000)
    move_clock(r, 1_001)
    before = db_snapshot()

    reply = run_script(r, q, "claim", args)

    assert reply == [b"bad_arg", refused.encode()]
    assert db_snapshot() == before


def test_the_script_answers_each_status_in_its_documented_shape(r: redis.Redis, q: Queue) -> None:
    assert run_script(r, q, "claim", VALID_ARGS) == [b"empty", T0, 0]
    enqueue_jobs(q, 1)

    ok = run_script(r, q, "claim", VALID_ARGS)
    duplicate = run_script(r, q, "claim", VALID_ARGS)

    assert ok[:3] == [b"ok", T0, b"job-0"]
    assert ok[4:] == [1, ok[5], T0 + DEFAULT_LEASE_MS]
    assert duplicate == [b"duplicate", *ok[1:]]
