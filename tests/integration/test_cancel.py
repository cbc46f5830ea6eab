"""lua/cancel.lua through Queue.cancel, on a real Redis.

Covers every status the script replies with (ok, duplicate, bad_state, not_found, bad_arg):
waiting and delayed jobs are cancelled for good, jobs in any other state are refused with the
state named and nothing changed, and cancelled records are trimmed by age and by count.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from scheduler import (
    InvalidState,
    JobNotFound,
    JobOptions,
    Queue,
    Retention,
    State,
    ValidationError,
)
from tests.integration.helpers import T0, Snapshot, leased, locations, move_clock, run_script

pytestmark = pytest.mark.usefixtures("pinned_clock")


# -- jobs that have not started ----------------------------------------------------------------


def waiting_job(r: redis.Redis, q: Queue) -> str:
    """A job ready to be claimed."""
    return q.enqueue("waiting").id


def delayed_job(r: redis.Redis, q: Queue) -> str:
    """A job due in 1000 ms."""
    return q.enqueue("delayed", options=JobOptions(delay_ms=1_000)).id


def retry_delayed_job(r: redis.Redis, q: Queue) -> str:
    """A job whose first attempt failed, delayed until its retry is due."""
    job = leased(q, "retried", options=JobOptions(backoff_ms=1_000))
    q.fail(job, "transient")
    assert q.inspect(job.id).state is State.DELAYED
    return job.id


@pytest.mark.parametrize("pending_job", [waiting_job, delayed_job, retry_delayed_job])
def test_a_job_that_has_not_started_is_cancelled_for_good(
    r: redis.Redis, q: Queue, pending_job: Callable[[redis.Redis, Queue], str]
) -> None:
    job_id = pending_job(r, q)
    move_clock(r, 5)

    assert q.cancel(job_id) is True

    info = q.inspect(job_id)
    assert (info.state, info.finished_ms, info.deadline_ms) == (State.CANCELLED, T0 + 5, 0)
    assert locations(r, q, job_id) - {"error"} == {"meta", "payload", "cancelled"}
    expiry = T0 + 5 + info.options.keep_dead_ms
    assert r.zscore(q.ops.keys.key("cancelled"), job_id) == expiry
    move_clock(r, 10_000)
    assert q.claim("worker-b").jobs == []
    assert q.reap().promoted == 0
    assert q.inspect(job_id).state is State.CANCELLED


def test_the_previous_state_is_named_in_the_reply(r: redis.Redis, q: Queue) -> None:
    waiting, delayed = waiting_job(r, q), delayed_job(r, q)
    args = ["100000", "100", "60000"]
    assert run_script(r, q, "cancel", [waiting, *args]) == [b"ok", b"waiting"]
    assert run_script(r, q, "cancel", [delayed, *args]) == [b"ok", b"delayed"]


def test_cancelling_again_is_a_duplicate_and_changes_nothing(
    r: redis.Redis, q: Queue, db_snapshot: Snapshot
) -> None:
    job_id = waiting_job(r, q)
    assert q.cancel(job_id) is True
    move_clock(r, 5)
    before = db_snapshot()

    assert q.cancel(job_id) is False

    assert db_snapshot() == before
    reply = run_script(r, q, "cancel", [job_id, "100000", "100", "60000"])
    assert reply == [b"duplicate", b"cancelled"]


# -- jobs that cannot be cancelled -------------------------------------------------------------


def active_job(r: redis.Redis, q: Queue) -> str:
    """A job leased to a worker."""
    return leased(q, "active").id


def completed_job(r: redis.Redis, q: Queue) -> str:
    """A job completed with a result."""
    job = leased(q, "completed")
    assert q.complete(job, "result") is True
    return job.id


def dead_job(r: redis.Redis, q: Queue) -> str:
    """A job failed for good."""
    job = leased(q, "dead")
    q.fail(job, "fatal", retryable=False)
    return job.id


def expired_active_job(r: redis.Redis, q: Queue) -> str:
    """A job whose lease ran out but which no reaper has returned yet: still active."""
    job_id = active_job(r, q)
    move_clock(r, q.inspect(job_id).options.lease_ms)
    return job_id


@pytest.mark.parametrize(
    ("started_job", "state"),
    [
        (active_job, "active"),
        (expired_active_job, "active"),
        (completed_job, "completed"),
        (dead_job, "dead"),
    ],
)
def test_a_started_or_finished_job_is_refused_with_its_state(
    r: redis.Redis,
    q: Queue,
    db_snapshot: Snapshot,
    started_job: Callable[[redis.Redis, Queue], str],
    state: str,
) -> None:
    job_id = started_job(r, q)
    before = db_snapshot()

    with pytest.raises(InvalidState) as caught:
        q.cancel(job_id)

    assert (caught.value.state, caught.value.job_id, caught.value.queue) == (state, job_id, "test")
    assert db_snapshot() == before
    assert q.inspect(job_id).state == state


def test_a_missing_job_is_not_found_and_nothing_changes(
    r: redis.Redis, q: Queue, db_snapshot: Snapshot
) -> None:
    waiting_job(r, q)
    before = db_snapshot()

    with pytest.raises(JobNotFound) as caught:
        q.cancel("no-such-job")

    assert caught.value.job_id == "no-such-job"
    assert db_snapshot() == before


# -- retention ---------------------------------------------------------------------------------


def test_the_count_cap_keeps_the_newest_records_and_stubs_of_the_rest_for_the_window(
    r: redis.Redis, make_queue: Callable[..., Queue]
) -> None:
    """Over max_cancelled, the oldest records lose their payload but keep a stub until the
    repeat window ends: a repeated cancel still answers "cancelled already"; after the window
    the stub goes too."""
    q = make_queue("test", retention=Retention(max_cancelled=2, repeat_window_ms=10_000))
    ids = []
    for n in range(5):
        ids.append(q.enqueue(n).id)
        assert q.cancel(ids[-1]) is True
        move_clock(r, 1)

    assert r.zrange(q.ops.keys.key("cancelled"), 0, -1) == [i.encode() for i in ids[-2:]]
    for trimmed in ids[:-2]:
        assert locations(r, q, trimmed) == {"meta"}  # the stub: no payload, no set but stubs
        assert r.zscore(q.ops.keys.key("stubs"), trimmed) is not None
        assert q.cancel(trimmed) is False
        assert q.inspect(trimmed).stub
    move_clock(r, 10_000)
    q.reap()
    for trimmed in ids[:-2]:
        assert locations(r, q, trimmed) == set()
        with pytest.raises(JobNotFound):
            q.cancel(trimmed)


def test_an_expired_cancelled_record_is_trimmed_by_a_later_cancel(r: redis.Redis, q: Queue) -> None:
    first = q.enqueue("first", options=JobOptions(keep_dead_ms=1_000)).id
    assert q.cancel(first) is True
    move_clock(r, 1_001)

    assert q.cancel(waiting_job(r, q)) is True

    assert locations(r, q, first) == set()
    with pytest.raises(JobNotFound):
        q.inspect(first)


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_id", ["", "bad id", "a|b", "x" * 129, None, 7])
def test_a_bad_id_is_refused_before_anything_is_sent(
    r: redis.Redis, q: Queue, db_snapshot: Snapshot, unreachable_queue: Queue, bad_id: Any
) -> None:
    """On the unreachable queue, a call that reached the network would raise a connection error
    (see the next test): a ValidationError there proves nothing was sent."""
    waiting_job(r, q)
    before = db_snapshot()

    for queue in (q, unreachable_queue):
        with pytest.raises(ValidationError):
            queue.cancel(bad_id)

    assert db_snapshot() == before


def test_a_valid_id_on_the_unreachable_queue_does_reach_the_network(
    unreachable_queue: Queue,
) -> None:
    with pytest.raises(redis.ConnectionError):
        unreachable_queue.cancel("good-id")


@pytest.mark.parametrize(
    ("args", "refused"),
    [
        (["bad id", "100", "100", "60000"], "id"),
        (["", "100", "100", "60000"], "id"),
        (["{id}", "-1", "100", "60000"], "max_cancelled"),
        (["{id}", "1000000001", "100", "60000"], "max_cancelled"),
        (["{id}", "100", "1001", "60000"], "trim_limit"),
        (["{id}", "100", "-1", "60000"], "trim_limit"),
        (["{id}", "100", "100", "0"], "window_ms"),
        (["{id}", "100", "100", "60000", "extra"], "argv"),
    ],
)
def test_the_script_refuses_bad_arguments_and_writes_nothing(
    r: redis.Redis, q: Queue, db_snapshot: Snapshot, args: list[str], refused: str
) -> None:
    """The job named is waiting: a cancel that ran would change it."""
    job_id = waiting_job(r, q)
    before = db_snapshot()

    reply = run_script(r, q, "cancel", [job_id if arg == "{id}" else arg for arg in args])

    assert reply == [b"bad_arg", refused.encode()]
    assert db_snapshot() == before
