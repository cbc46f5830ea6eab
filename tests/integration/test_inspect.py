"""lua/inspect.lua through Queue.inspect, on a real Redis.

Follows one job through its life cycle (waiting, active, failed and delayed for a retry, active
again, completed) on a pinned clock and checks every :class:`JobInfo` field at each step, the
job's options included (jitter too); a dead and a cancelled job; :class:`JobNotFound` for a
missing id; and that inspect only reads.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import redis

from scheduler import JobInfo, JobNotFound, JobOptions, Outcome, Queue, State, ValidationError
from scheduler._codec import encode
from tests.integration.helpers import T0, Snapshot, move_clock, seed_every_state

OPTIONS = JobOptions(
    priority=7,
    max_attempts=4,
    lease_ms=10_000,
    backoff_ms=2_000,
    backoff_max_ms=60_000,
    jitter=0.25,
    keep_result_ms=3_600_000,
    keep_dead_ms=7_200_000,
)
"""Options with every stored field away from its default, so a mix-up would show."""

PAYLOAD = {"to": "ada@example.org", "sizes": [1, 2, 3], "blob": b"\x00\xff"}

pytestmark = pytest.mark.usefixtures("pinned_clock")


def expected_info(**changes: Any) -> JobInfo:
    """The JobInfo of job ``job`` right after it was enqueued at T0 with :data:`OPTIONS`,
    with ``changes`` applied."""
    fresh = JobInfo(
        queue="test",
        id="job",
        state=State.WAITING,
        attempt=0,
        max_attempts=OPTIONS.max_attempts,
        priority=OPTIONS.priority,
        token="",
        outcome=Outcome.NONE,
        worker="",
        deadline_ms=0,
        created_ms=T0,
        ready_ms=T0,
        leased_ms=0,
        started_ms=0,
        finished_ms=0,
        options=OPTIONS,
        payload=PAYLOAD,
        result=None,
        error=None,
        now_ms=T0,
        payload_bytes=len(encode(PAYLOAD)),
    )
    return dataclasses.replace(fresh, **changes)


def test_every_field_is_right_through_a_life_cycle(r: redis.Redis, q: Queue) -> None:
    q.enqueue(PAYLOAD, id="job", options=OPTIONS)
    assert q.inspect("job") == expected_info()

    move_clock(r, 100)
    first = q.claim("worker-1").jobs[0]
    active_once = expected_info(
        state=State.ACTIVE,
        attempt=1,
        token=first.token,
        outcome=Outcome.RUNNING,
        worker="worker-1",
        deadline_ms=T0 + 100 + 10_000,
        leased_ms=T0 + 100,
        now_ms=T0 + 100,
    )
    assert first.token.startswith("1-")
    assert q.inspect("job") == active_once

    move_clock(r, 30)  # the handler began 10 ms ago: the next heartbeat says so
    q.heartbeat([first], started={first.token: 10})
    active_once = dataclasses.replace(
        active_once, started_ms=T0 + 120, deadline_ms=T0 + 130 + 10_000, now_ms=T0 + 130
    )
    assert q.inspect("job") == active_once
    move_clock(r, -30)

    move_clock(r, 50)
    assert q.fail(first, "boom: out of cheese", delay_ms=3_000).run_at_ms == T0 + 3_150
    retry_delayed = dataclasses.replace(
        active_once,
        state=State.DELAYED,
        outcome=Outcome.RETRY,
        deadline_ms=0,
        ready_ms=T0 + 3_150,
        error="boom: out of cheese",
        now_ms=T0 + 150,
    )
    assert q.inspect("job") == retry_delayed

    move_clock(r, 3_000)
    second = q.claim("worker-2").jobs[0]
    active_twice = dataclasses.replace(
        retry_delayed,
        state=State.ACTIVE,
        attempt=2,
        token=second.token,
        outcome=Outcome.RUNNING,
        worker="worker-2",
        deadline_ms=T0 + 3_150 + 10_000,
        leased_ms=T0 + 3_150,
        started_ms=0,
        now_ms=T0 + 3_150,
    )
    assert second.token.startswith("2-") and second.token != first.token
    assert q.inspect("job") == active_twice

    move_clock(r, 20)
    assert q.complete(second, {"sent": True, "ids": [7]}) is True
    assert q.inspect("job") == dataclasses.replace(
        active_twice,
        state=State.COMPLETED,
        outcome=Outcome.COMPLETED,
        deadline_ms=0,
        finished_ms=T0 + 3_170,
        result={"sent": True, "ids": [7]},
        now_ms=T0 + 3_170,
    )


def test_a_dead_job_shows_its_error_and_when_it_died(r: redis.Redis, q: Queue) -> None:
    q.enqueue(PAYLOAD, id="job", options=OPTIONS)
    lease = q.claim("worker-1").jobs[0]
    move_clock(r, 40)
    q.fail(lease, "fatal", retryable=False)
    assert q.inspect("job") == expected_info(
        state=State.DEAD,
        attempt=1,
        token=lease.token,
        outcome=Outcome.DEAD,
        worker="worker-1",
        leased_ms=T0,
        finished_ms=T0 + 40,
        error="fatal",
        now_ms=T0 + 40,
    )


def test_a_cancelled_job_was_never_started(r: redis.Redis, q: Queue) -> None:
    q.enqueue(PAYLOAD, id="job", options=OPTIONS)
    move_clock(r, 5)
    q.cancel("job")
    assert q.inspect("job") == expected_info(
        state=State.CANCELLED, finished_ms=T0 + 5, now_ms=T0 + 5
    )


@pytest.mark.parametrize("jitter", [0.0, 0.001, 0.5, 0.999, 1.0])
def test_jitter_round_trips_in_per_mille(q: Queue, jitter: float) -> None:
    q.enqueue("x", id="job", options=JobOptions(jitter=jitter))
    assert q.inspect("job").options.jitter == jitter


def test_a_delayed_job_shows_when_it_is_due(q: Queue) -> None:
    q.enqueue(PAYLOAD, id="job", options=dataclasses.replace(OPTIONS, delay_ms=1_500))
    assert q.inspect("job") == expected_info(state=State.DELAYED, ready_ms=T0 + 1_500)


def test_a_missing_job_is_not_found(q: Queue) -> None:
    seed_every_state(q)
    with pytest.raises(JobNotFound) as caught:
        q.inspect("missing")
    assert (caught.value.queue, caught.value.job_id) == ("test", "missing")


@pytest.mark.parametrize("job_id", ["", "a b", "a|b", "x" * 129, None])
def test_a_bad_id_is_refused(q: Queue, job_id: Any) -> None:
    with pytest.raises(ValidationError):
        q.inspect(job_id)


def test_inspect_only_reads(r: redis.Redis, q: Queue, db_snapshot: Snapshot) -> None:
    seeded = seed_every_state(q)
    move_clock(r, 3_600_000)
    before = db_snapshot()

    infos = [q.inspect(job_id) for job_id in seeded.values()]
    with pytest.raises(JobNotFound):
        q.inspect("missing")

    assert db_snapshot() == before
    assert [info.state for info in infos] == list(seeded)
