"""Every option at its documented maximum, through every script, on a real Redis; and the byte
budget of a call.

Item 5 of the hardening issue: ``lib/backoff.lua`` called ``math.random(0, spread)``, which
takes C ints: with a jitter spread of 2^31 ms or more (``backoff_max_ms`` of 30 days with full
jitter, which the options accept) ``fail`` raised after it had taken the job out of ``active``,
and the job was lost. Item 8: no byte budget per call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
import redis

from scheduler import JobOptions, JobSpec, Outcome, Queue, Retention, State, Status
from scheduler._models import DAY_MS
from scheduler._policy import delay_bounds_ms, retry_delay_ms
from scheduler._validate import MAX_BATCH, MAX_MS
from tests.integration.helpers import T0, leased, locations, move_clock

pytestmark = pytest.mark.usefixtures("pinned_clock")

MAXIMAL = JobOptions(
    priority=1_000,
    max_attempts=1_000,
    lease_ms=MAX_MS,
    backoff_ms=MAX_MS,
    backoff_max_ms=MAX_MS,
    jitter=1.0,
    keep_result_ms=MAX_MS,
    keep_dead_ms=MAX_MS,
)
"""Every option at the top of its documented range."""


@pytest.mark.parametrize(
    "backoff_max_ms",
    [2**31 - 1, 2**31, 2**32, 30 * DAY_MS, MAX_MS],
    ids=["2^31-1", "2^31", "2^32", "30 days", "a century"],
)
@pytest.mark.parametrize("jitter", [0.5, 1.0])
def test_a_retry_with_a_huge_jittered_backoff_is_never_lost(
    r: redis.Redis, q: Queue, backoff_max_ms: int, jitter: float
) -> None:
    options = JobOptions(backoff_ms=backoff_max_ms, backoff_max_ms=backoff_max_ms, jitter=jitter)
    job = leased(q, options=options)

    failed = q.fail(job, "transient")

    low, high = delay_bounds_ms(options, 1)
    assert failed.outcome is Outcome.RETRY
    assert low <= failed.run_at_ms - T0 <= high
    assert failed.run_at_ms - T0 == retry_delay_ms(options, 1, job.token)
    assert locations(r, q, job.id) >= {"meta", "delayed"}
    assert q.inspect(job.id).state is State.DELAYED


def test_the_jitter_is_drawn_from_the_token_and_spread_over_the_whole_range(q: Queue) -> None:
    """Uniform enough: 200 retries of a 2^40 ms spread fall in every tenth of it."""
    options = JobOptions(backoff_ms=2**40, backoff_max_ms=2**40, jitter=1.0)
    q.enqueue_many([JobSpec(n, f"j{n}", options) for n in range(200)])
    tenths = set()
    for job in q.claim("w", count=200).jobs:
        delay = q.fail(job, "e").run_at_ms - T0
        assert 0 <= delay <= 2**40
        tenths.add(delay * 10 // (2**40 + 1))
    assert tenths == set(range(10))


def test_the_python_twin_draws_what_the_script_draws() -> None:
    options = JobOptions(backoff_ms=1_000, backoff_max_ms=60_000, jitter=0.5)
    token = "3-0123456789abcdef"
    draw = int(hashlib.sha1(f"{token}:retry".encode()).hexdigest()[:13], 16)
    nominal = 4_000  # attempt 3: 1 s doubled twice
    assert retry_delay_ms(options, 3, token) == nominal - 2_000 + draw % 2_001


def test_every_option_at_its_maximum_goes_through_every_script(
    r: redis.Redis, q: Queue
) -> None:
    at_max = q.enqueue_many(
        [
            JobSpec("a", "max-a", MAXIMAL),
            JobSpec("b", "max-b", MAXIMAL),
            JobSpec("c", "max-c", MAXIMAL),
            JobSpec("later", "max-later", JobOptions(delay_ms=MAX_MS)),
            JobSpec("at", "max-at", JobOptions(run_at_ms=MAX_MS)),
            JobSpec("low", "min-prio", JobOptions(priority=-1_000)),
        ]
    )
    assert [e.state for e in at_max] == [State.WAITING] * 3 + [State.DELAYED] * 2 + [
        State.WAITING
    ]
    a, b, c = q.claim("w", count=3, maintenance=MAX_BATCH).jobs
    assert a.deadline_ms == T0 + MAX_MS
    q.heartbeat([a, b, c], started={a.token: 0})
    assert q.complete(a, "done") is True
    failed = q.fail(b, "transient")
    assert failed.outcome is Outcome.RETRY and failed.run_at_ms <= T0 + MAX_MS
    assert q.fail(c, "fatal", retryable=False).outcome is Outcome.DEAD
    assert q.requeue(["max-c"])[0].status is Status.OK
    assert q.cancel("max-later") is True
    assert q.claim("w", count=10).jobs[0].id == "max-c"
    reaped = q.reap(limit=MAX_BATCH)
    assert reaped.dead == reaped.requeued == 0
    assert q.purge(State.COMPLETED, limit=MAX_BATCH)[0].status is Status.OK
    assert q.inspect("min-prio").options.priority == -1_000
    move_clock(r, MAX_MS)  # a century on: every lease, delay and retention has run out
    q.reap(limit=MAX_BATCH)
    stats = q.stats(active_limit=MAX_BATCH)
    assert stats.counts[State.WAITING] == 4 and sum(stats.counts.values()) == 4


def test_a_full_batch_at_the_largest_counts_goes_through(
    make_queue: Callable[..., Queue],
) -> None:
    q = make_queue(
        "test",
        retention=Retention(
            max_completed=10**9,
            max_dead=10**9,
            max_cancelled=10**9,
            trim_batch=MAX_BATCH,
            repeat_window_ms=MAX_MS,
        ),
    )
    q.enqueue_many([JobSpec(n, f"j{n}") for n in range(MAX_BATCH)])
    jobs = q.claim("w", count=MAX_BATCH, maintenance=MAX_BATCH).jobs
    assert len(jobs) == MAX_BATCH
    started = {job.token: 0 for job in jobs}
    assert q.heartbeat(jobs, started=started).lost == []
    assert {s.status for s in q.complete_many([(job, None) for job in jobs])} == {Status.OK}
    assert q.reap(limit=MAX_BATCH).trimmed == 0


# -- the byte budget -----------------------------------------------------------------------------


def test_a_claim_stops_leasing_once_its_payloads_reach_the_byte_budget(
    make_queue: Callable[..., Queue],
) -> None:
    q = make_queue("test", max_call_bytes=10_000)
    q.enqueue_many([JobSpec(b"x" * 3_000, f"j{n}") for n in range(10)])

    sizes = [len(q.claim("w", count=10).jobs) for _ in range(4)]

    assert sizes == [3, 3, 3, 1]  # 3 x ~3 kB fit in 10 kB; a 4th would not


def test_one_payload_larger_than_the_budget_is_still_leased_alone(
    make_queue: Callable[..., Queue],
) -> None:
    q = make_queue("test", max_call_bytes=1_000)
    q.enqueue_many([JobSpec(b"x" * 5_000, f"big{n}") for n in range(2)])
    assert [len(q.claim("w", count=10).jobs) for _ in range(2)] == [1, 1]


def test_a_batch_over_the_budget_is_enqueued_and_completed_in_several_calls(
    r: redis.Redis, make_queue: Callable[..., Queue]
) -> None:
    q = make_queue("test", max_call_bytes=10_000)
    calls_before = script_calls(r)

    answers = q.enqueue_many([JobSpec(b"x" * 3_000, f"j{n}") for n in range(10)])

    assert [a.id for a in answers] == [f"j{n}" for n in range(10)]
    assert all(a.created for a in answers)
    assert script_calls(r) - calls_before == 4
    jobs = [job for _ in range(4) for job in q.claim("w", count=10).jobs]
    statuses = q.complete_many([(job, b"y" * 4_000) for job in jobs])
    assert [s.id for s in statuses] == [job.id for job in jobs]
    assert {s.status for s in statuses} == {Status.OK}
    assert q.stats().counts[State.COMPLETED] == 10


def script_calls(r: redis.Redis) -> int:
    """How many EVALSHA calls the server has run so far (INFO commandstats)."""
    stats = r.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))

