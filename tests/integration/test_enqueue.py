"""lua/enqueue.lua through Queue.enqueue, Queue.enqueue_many and QueueOps.enqueue_unique, on a
real Redis.

Covers both per-item statuses the script answers with (ok: created now, duplicate: the id
exists), the waiting/delayed split (``delay_ms``, ``run_at_ms``), the options stored with each
job, idempotency (a repeated id, a repeated batch), priority and FIFO order as claims see it,
batches that mix option sets, the batch limits, and bad input refused before anything is sent
(by the client) or before anything is written (by the script, ``bad_arg``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
import redis

from scheduler import (
    DuplicateJob,
    Enqueued,
    JobOptions,
    JobSpec,
    PayloadError,
    Queue,
    State,
    ValidationError,
)
from scheduler._validate import option_args
from tests.integration.helpers import T0, Snapshot, move_clock, run_script

pytestmark = pytest.mark.usefixtures("pinned_clock")


def claim_order(q: Queue, count: int) -> list[str]:
    """Claim up to ``count`` jobs one call at a time and return their ids in claim order."""
    order = []
    for _ in range(count):
        jobs = q.claim("worker-a").jobs
        order += [job.id for job in jobs]
    return order


def zscore(r: redis.Redis, q: Queue, part: str, job_id: str) -> float | None:
    """The score of ``job_id`` in the queue's ZSET ``part`` (None when absent)."""
    return r.zscore(q.ops.keys.key(part), job_id)


# -- created: waiting or delayed ---------------------------------------------------------------


def test_a_job_without_delay_is_waiting_in_the_ready_set(r: redis.Redis, q: Queue) -> None:
    answer = q.enqueue({"to": "a@example.com"}, id="job-1")

    assert answer == Enqueued("job-1", True, State.WAITING)
    info = q.inspect("job-1")
    assert info.state is State.WAITING
    assert info.payload == {"to": "a@example.com"}
    assert (info.created_ms, info.ready_ms, info.attempt, info.token) == (T0, T0, 0, "")
    assert zscore(r, q, "ready", "job-1") is not None
    assert zscore(r, q, "delayed", "job-1") is None


def test_delay_ms_makes_a_delayed_job_due_after_the_delay(r: redis.Redis, q: Queue) -> None:
    answer = q.enqueue("later", id="job-1", options=JobOptions(delay_ms=5_000))

    assert answer == Enqueued("job-1", True, State.DELAYED)
    assert q.inspect("job-1").ready_ms == T0 + 5_000
    assert zscore(r, q, "delayed", "job-1") == T0 + 5_000
    assert zscore(r, q, "ready", "job-1") is None


def test_run_at_ms_in_the_future_delays_the_job_until_then(r: redis.Redis, q: Queue) -> None:
    answer = q.enqueue("later", id="job-1", options=JobOptions(run_at_ms=T0 + 60_000))

    assert answer.state is State.DELAYED
    assert zscore(r, q, "delayed", "job-1") == T0 + 60_000


def test_run_at_ms_overrides_delay_ms(r: redis.Redis, q: Queue) -> None:
    q.enqueue("x", id="job-1", options=JobOptions(delay_ms=90_000, run_at_ms=T0 + 100))

    assert zscore(r, q, "delayed", "job-1") == T0 + 100


@pytest.mark.parametrize("run_at_ms", [T0 - 1_000, T0])
def test_run_at_ms_that_has_come_makes_the_job_waiting_now(
    r: redis.Redis, q: Queue, run_at_ms: int
) -> None:
    answer = q.enqueue("x", id="job-1", options=JobOptions(run_at_ms=run_at_ms))

    assert answer.state is State.WAITING
    assert q.inspect("job-1").ready_ms == T0
    assert zscore(r, q, "ready", "job-1") is not None


def test_a_delayed_job_is_claimable_once_due_and_not_before(r: redis.Redis, q: Queue) -> None:
    q.enqueue("x", id="job-1", options=JobOptions(delay_ms=1_000))

    move_clock(r, 999)
    assert q.claim("worker-a").jobs == []
    move_clock(r, 1)
    assert [job.id for job in q.claim("worker-a").jobs] == ["job-1"]


def test_the_options_given_are_stored_with_the_job(q: Queue) -> None:
    options = JobOptions(
        priority=-7,
        max_attempts=9,
        lease_ms=12_345,
        backoff_ms=250,
        backoff_max_ms=60_000,
        jitter=0.25,
        keep_result_ms=1_000,
        keep_dead_ms=2_000,
    )

    q.enqueue("x", id="job-1", options=options)

    info = q.inspect("job-1")
    assert info.options == options
    assert (info.priority, info.max_attempts) == (-7, 9)


def test_the_queue_defaults_apply_to_a_job_without_options(
    make_queue: Callable[..., Queue],
) -> None:
    defaults = JobOptions(priority=3, max_attempts=5, lease_ms=4_000, jitter=0.0)
    queue = make_queue("test", defaults=defaults)

    queue.enqueue("x", id="job-1")

    assert queue.inspect("job-1").options == defaults


def test_a_job_without_an_id_gets_a_fresh_one(q: Queue) -> None:
    first = q.enqueue("x")
    second = q.enqueue("x")

    assert first.created and second.created
    assert first.id != second.id
    assert q.inspect(first.id).state is State.WAITING


# -- idempotency: duplicate ----------------------------------------------------------------------


def test_the_same_id_twice_is_one_job_and_the_second_answer_is_a_duplicate(
    q: Queue, db_snapshot: Snapshot
) -> None:
    q.enqueue("first", id="job-1")
    before = db_snapshot()

    again = q.enqueue("second", id="job-1", options=JobOptions(priority=99))

    assert again == Enqueued("job-1", False, State.WAITING)
    assert db_snapshot() == before
    assert q.inspect("job-1").payload == "first"
    assert q.stats().counts[State.WAITING] == 1


def test_a_duplicate_answers_with_the_existing_jobs_current_state(q: Queue) -> None:
    q.enqueue("x", id="delayed-job", options=JobOptions(delay_ms=10_000))
    q.enqueue("x", id="leased-job")
    q.claim("worker-a")

    assert q.enqueue("y", id="delayed-job") == Enqueued("delayed-job", False, State.DELAYED)
    assert q.enqueue("y", id="leased-job") == Enqueued("leased-job", False, State.ACTIVE)


def test_a_completed_jobs_id_is_still_deduplicated(q: Queue) -> None:
    q.enqueue("x", id="job-1")
    q.complete(q.claim("worker-a").jobs[0], "done")

    assert q.enqueue("x", id="job-1") == Enqueued("job-1", False, State.COMPLETED)
    assert q.inspect("job-1").result == "done"


def test_duplicate_ids_inside_one_batch_make_one_job_and_keep_the_first_payload(
    q: Queue,
) -> None:
    answers = q.enqueue_many(
        [JobSpec("first", "job-1"), JobSpec("other", "job-2"), JobSpec("second", "job-1")]
    )

    assert answers == [
        Enqueued("job-1", True, State.WAITING),
        Enqueued("job-2", True, State.WAITING),
        Enqueued("job-1", False, State.WAITING),
    ]
    assert q.inspect("job-1").payload == "first"
    assert q.stats().counts[State.WAITING] == 2
    assert sorted(claim_order(q, 3)) == ["job-1", "job-2"]


def test_a_duplicate_inside_a_batch_reports_the_state_the_batch_gave_the_first(
    q: Queue,
) -> None:
    answers = q.enqueue_many(
        [
            JobSpec("x", "job-1", JobOptions(delay_ms=1_000)),
            JobSpec("y", "job-1"),
        ]
    )

    assert [a.state for a in answers] == [State.DELAYED, State.DELAYED]
    assert [a.created for a in answers] == [True, False]


def test_repeating_a_whole_batch_creates_nothing_and_writes_nothing(
    q: Queue, db_snapshot: Snapshot
) -> None:
    ids = [f"job-{i}" for i in range(5)]
    first = q.enqueue_many([JobSpec({"n": i}, job_id) for i, job_id in enumerate(ids)])
    before = db_snapshot()

    repeat = q.enqueue_many([JobSpec({"n": -1}, job_id) for job_id in ids])

    assert all(a.created for a in first)
    assert repeat == [Enqueued(job_id, False, State.WAITING) for job_id in ids]
    assert db_snapshot() == before
    assert [q.inspect(job_id).payload for job_id in ids] == [{"n": i} for i in range(5)]


def test_enqueue_unique_creates_then_raises_duplicate_job(q: Queue, db_snapshot: Snapshot) -> None:
    created = q._run(q.ops.enqueue_unique("first", id="job-1"))
    before = db_snapshot()

    with pytest.raises(DuplicateJob) as raised:
        q._run(q.ops.enqueue_unique("second", id="job-1"))

    assert created == Enqueued("job-1", True, State.WAITING)
    assert (raised.value.queue, raised.value.job_id) == ("test", "job-1")
    assert db_snapshot() == before
    assert q.inspect("job-1").payload == "first"


# -- order -------------------------------------------------------------------------------------


def test_higher_priority_is_claimed_first_and_fifo_holds_within_a_priority(q: Queue) -> None:
    for job_id, priority in [
        ("low-1", -5),
        ("mid-1", 0),
        ("high-1", 10),
        ("mid-2", 0),
        ("low-2", -5),
        ("high-2", 10),
        ("mid-3", 0),
    ]:
        q.enqueue("x", id=job_id, options=JobOptions(priority=priority))

    assert claim_order(q, 7) == ["high-1", "high-2", "mid-1", "mid-2", "mid-3", "low-1", "low-2"]


def test_fifo_holds_across_separate_calls_and_within_a_batch(q: Queue) -> None:
    q.enqueue("x", id="a")
    q.enqueue_many([JobSpec("x", "b"), JobSpec("x", "c")])
    q.enqueue("x", id="d")
    q.enqueue_many([JobSpec("x", "e"), JobSpec("x", "f")])

    claimed = q.claim("worker-a", count=6).jobs

    assert [job.id for job in claimed] == ["a", "b", "c", "d", "e", "f"]


def test_extreme_priorities_keep_their_order(q: Queue) -> None:
    q.enqueue("x", id="lowest", options=JobOptions(priority=-1000))
    q.enqueue("x", id="lowest-2", options=JobOptions(priority=-1000))
    q.enqueue("x", id="highest", options=JobOptions(priority=1000))
    q.enqueue("x", id="next-to-lowest", options=JobOptions(priority=-999))

    assert claim_order(q, 4) == ["highest", "next-to-lowest", "lowest", "lowest-2"]


# -- batches with several option sets -----------------------------------------------------------


def test_a_batch_with_mixed_options_stores_each_jobs_own_options(r: redis.Redis, q: Queue) -> None:
    urgent = JobOptions(priority=5, max_attempts=1, jitter=0.0)
    later = JobOptions(delay_ms=2_000, lease_ms=5_000)
    at_time = JobOptions(run_at_ms=T0 + 7_000, keep_dead_ms=1)
    specs = [
        JobSpec("p0", "plain-1"),
        JobSpec("p1", "urgent-1", urgent),
        JobSpec("p2", "later-1", later),
        JobSpec("p3", "urgent-2", urgent),
        JobSpec("p4", "at-1", at_time),
        JobSpec("p5", "plain-2", None),
    ]
    call = q.ops.enqueue_many(specs)

    answers = q.enqueue_many(specs)

    (one_call,) = call.calls
    assert one_call.args[0] == 4  # defaults, urgent, later and at_time: each set sent once
    assert [a.state for a in answers] == [
        State.WAITING,
        State.WAITING,
        State.DELAYED,
        State.WAITING,
        State.DELAYED,
        State.WAITING,
    ]
    assert all(a.created for a in answers)
    assert q.inspect("urgent-2").options == urgent
    assert q.inspect("later-1").options == replace(later, delay_ms=0)  # the delay is ready_ms
    assert q.inspect("plain-2").options == JobOptions()
    assert q.inspect("at-1").options.keep_dead_ms == 1
    assert zscore(r, q, "delayed", "later-1") == T0 + 2_000
    assert zscore(r, q, "delayed", "at-1") == T0 + 7_000
    assert [q.inspect(spec.id or "").payload for spec in specs] == [s.payload for s in specs]
    assert claim_order(q, 5) == ["urgent-1", "urgent-2", "plain-1", "plain-2"]


def test_a_batch_mixing_new_and_existing_ids_creates_only_the_new_ones(q: Queue) -> None:
    q.enqueue("old", id="job-1")

    answers = q.enqueue_many([JobSpec("new", "job-0"), JobSpec("new", "job-1")])

    assert [(a.id, a.created) for a in answers] == [("job-0", True), ("job-1", False)]
    assert q.inspect("job-1").payload == "old"


def test_a_batch_of_1000_is_accepted(q: Queue) -> None:
    answers = q.enqueue_many([JobSpec(i, f"job-{i}") for i in range(1000)])

    assert len(answers) == 1000 and all(a.created for a in answers)
    assert q.stats().counts[State.WAITING] == 1000
    assert [job.id for job in q.claim("worker-a", count=3).jobs] == ["job-0", "job-1", "job-2"]


# -- refusals before anything is sent ----------------------------------------------------------


def enqueue_with(**options: Any) -> Callable[[Queue], object]:
    """A call enqueueing one job with these options."""
    return lambda q: q.enqueue("x", id="job-new", options=JobOptions(**options))


def enqueue_id(job_id: Any) -> Callable[[Queue], object]:
    """A call enqueueing one job with this id."""
    return lambda q: q.enqueue("x", id=job_id)


def enqueue_payload(payload: Any) -> Callable[[Queue], object]:
    """A call enqueueing one job with this payload."""
    return lambda q: q.enqueue(payload, id="job-new")


def batch_with_one_bad_item(q: Queue) -> object:
    """A batch whose valid first items must not be sent when the last one is bad."""
    return q.enqueue_many([JobSpec("x", "ok-1"), JobSpec("x", "ok-2"), JobSpec("x", "a b")])


def oversized_payload(q: Queue) -> object:
    """A payload a few bytes over the queue's size cap once encoded (the msgpack header)."""
    return q.enqueue("x" * q.ops.max_payload_bytes, id="job-new")


REFUSED_CALLS: list[tuple[str, Callable[[Queue], object], type[Exception]]] = [
    ("empty batch", lambda q: q.enqueue_many([]), ValidationError),
    ("batch of 1001", lambda q: q.enqueue_many([JobSpec(i) for i in range(1001)]), ValidationError),
    ("id with a space", enqueue_id("a b"), ValidationError),
    ("id with a pipe", enqueue_id("x|y"), ValidationError),
    ("id with a comma", enqueue_id("x,y"), ValidationError),
    ("id with a brace", enqueue_id("x{y"), ValidationError),
    ("empty id", enqueue_id(""), ValidationError),
    ("id of 129 characters", enqueue_id("x" * 129), ValidationError),
    ("id that is not text", enqueue_id(42), ValidationError),
    ("priority 1001", enqueue_with(priority=1001), ValidationError),
    ("priority -1001", enqueue_with(priority=-1001), ValidationError),
    ("priority that is a bool", enqueue_with(priority=True), ValidationError),
    ("max_attempts 0", enqueue_with(max_attempts=0), ValidationError),
    ("max_attempts 1001", enqueue_with(max_attempts=1001), ValidationError),
    ("lease_ms 0", enqueue_with(lease_ms=0), ValidationError),
    ("negative delay_ms", enqueue_with(delay_ms=-1), ValidationError),
    ("run_at_ms 0", enqueue_with(run_at_ms=0), ValidationError),
    ("jitter 1.5", enqueue_with(jitter=1.5), ValidationError),
    ("jitter nan", enqueue_with(jitter=float("nan")), ValidationError),
    ("jitter that is text", enqueue_with(jitter="0.5"), ValidationError),
    ("unencodable payload", enqueue_payload(object()), PayloadError),
    ("payload with an int map key", enqueue_payload({1: "x"}), PayloadError),
    ("payload over max_payload_bytes", oversized_payload, PayloadError),
    ("one bad item in a batch", batch_with_one_bad_item, ValidationError),
]


@pytest.mark.parametrize(
    ("bad_call", "error"),
    [pytest.param(call, error, id=name) for name, call, error in REFUSED_CALLS],
)
def test_bad_input_is_refused_before_anything_is_sent(
    q: Queue,
    db_snapshot: Snapshot,
    bad_call: Callable[[Queue], object],
    error: type[Exception],
) -> None:
    q.enqueue("existing", id="job-old")
    before = db_snapshot()

    with pytest.raises(error):
        bad_call(q)

    assert db_snapshot() == before


def test_a_payload_exactly_at_the_size_cap_is_accepted(make_queue: Callable[..., Queue]) -> None:
    queue = make_queue("test", max_payload_bytes=64)
    payload = b"x" * 62  # msgpack bin 8: two header bytes

    assert queue.enqueue(payload, id="job-1").created
    assert queue.inspect("job-1").payload == payload
    with pytest.raises(PayloadError):
        queue.enqueue(b"x" * 63, id="job-2")


# -- refusals by the script itself: bad_arg ------------------------------------------------------


def raw_args(
    options: list[Any], jobs: list[list[Any]], n_options: Any = 1, n_jobs: Any = None
) -> list[Any]:
    """enqueue.lua's ARGV for one option set and these jobs (each ``[id, payload, index]``)."""
    flat = [value for job in jobs for value in job]
    return [n_options, *options, len(jobs) if n_jobs is None else n_jobs, *flat]


DEFAULT_OPTIONS = list(option_args(JobOptions()))
"""The ten numbers of the default option set, as enqueue.lua takes them."""

OPTION_POSITIONS = {
    "priority": 0,
    "delay_ms": 1,
    "run_at_ms": 2,
    "max_attempts": 3,
    "lease_ms": 4,
    "jitter_pm": 7,
}
"""Where some options sit in an option set."""


def options_with(name: str, value: str) -> list[Any]:
    """The default option set with one value replaced."""
    options = list(DEFAULT_OPTIONS)
    options[OPTION_POSITIONS[name]] = value
    return options


VALID_JOB = ["ok-1", b"\xc0", 1]
"""A well-formed job item (payload: msgpack nil)."""


@pytest.mark.parametrize(
    ("args", "refused"),
    [
        (raw_args(DEFAULT_OPTIONS, [VALID_JOB], n_options=0), "n_options"),
        (raw_args(DEFAULT_OPTIONS, [VALID_JOB], n_options=1001), "n_options"),
        (raw_args(options_with("priority", "1001"), [VALID_JOB]), "priority"),
        (raw_args(options_with("delay_ms", "-1"), [VALID_JOB]), "delay_ms"),
        (raw_args(options_with("run_at_ms", "1.5"), [VALID_JOB]), "run_at_ms"),
        (raw_args(options_with("max_attempts", "0"), [VALID_JOB]), "max_attempts"),
        (raw_args(options_with("lease_ms", "0"), [VALID_JOB]), "lease_ms"),
        (raw_args(options_with("jitter_pm", "nan"), [VALID_JOB]), "jitter_pm"),
        (raw_args(DEFAULT_OPTIONS, [VALID_JOB], n_jobs=0), "n_jobs"),
        (raw_args(DEFAULT_OPTIONS, [VALID_JOB], n_jobs=2), "n_jobs"),
        (raw_args(DEFAULT_OPTIONS, [VALID_JOB, ["a b", b"\xc0", 1]]), "id"),
        (raw_args(DEFAULT_OPTIONS, [VALID_JOB, ["x|y", b"\xc0", 1]]), "id"),
        (raw_args(DEFAULT_OPTIONS, [VALID_JOB, ["", b"\xc0", 1]]), "id"),
        (raw_args(DEFAULT_OPTIONS, [VALID_JOB, ["ok-2", b"\xc0", 2]]), "option_index"),
        (raw_args(DEFAULT_OPTIONS, [VALID_JOB, ["ok-2", b"\xc0", 0]]), "option_index"),
    ],
)
def test_the_script_refuses_bad_arguments_and_writes_nothing(
    r: redis.Redis, q: Queue, db_snapshot: Snapshot, args: list[Any], refused: str
) -> None:
    """Every item is checked before the first write: a valid first item is not created."""
    q.enqueue("existing", id="job-old")
    before = db_snapshot()

    reply = run_script(r, q, "enqueue", args)

    assert reply == [b"bad_arg", refused.encode()]
    assert db_snapshot() == before


def test_the_script_answers_per_item_statuses_and_the_created_count(
    r: redis.Redis, q: Queue
) -> None:
    q.enqueue("existing", id="job-old")

    args = raw_args(DEFAULT_OPTIONS, [["job-new", b"\xc0", 1], ["job-old", b"\xc0", 1]])

    reply = run_script(r, q, "enqueue", args)

    assert reply == [b"ok", 1, b"job-new", b"ok", b"waiting", b"job-old", b"duplicate", b"waiting"]
