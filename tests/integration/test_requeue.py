"""lua/requeue.lua through Queue.requeue, on a real Redis.

Covers every status the script replies with per id (ok, not_found, bad_state) and the refusal
of bad arguments: dead jobs go back to waiting with a fresh attempt budget and run again; with no
ids the oldest ``limit`` dead jobs move; a job in any other state is left exactly as it was; the
last error stays on the record until the job fails again. Dead jobs are made with
``fail(retryable=False)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from scheduler import (
    ItemStatus,
    JobOptions,
    Outcome,
    Queue,
    Retention,
    ScriptError,
    State,
    Status,
    ValidationError,
)
from tests.integration.helpers import (
    T0,
    Snapshot,
    leased,
    move_clock,
    run_script,
    seed_every_state,
    without_requests,
)

pytestmark = pytest.mark.usefixtures("pinned_clock")


def make_dead(q: Queue, job_id: str, error: str = "broken", **options: Any) -> None:
    """Enqueue ``job_id``, claim it and fail it for good: it ends in the dead letters."""
    lease = leased(q, job_id, job_id=job_id, options=JobOptions(**options))
    q.fail(lease, error, retryable=False)
    assert q.inspect(job_id).state is State.DEAD


def statuses(*pairs: tuple[str, Status]) -> list[ItemStatus]:
    """The reply expected from requeue: one ItemStatus per (id, status)."""
    return [ItemStatus(job_id, status) for job_id, status in pairs]


def test_a_dead_job_waits_again_with_a_fresh_budget_and_runs_to_completion(
    r: redis.Redis, q: Queue
) -> None:
    make_dead(q, "job", max_attempts=2)
    dead_key, ready_key = q.ops.keys.key("dead"), q.ops.keys.key("ready")
    move_clock(r, 100)

    assert q.requeue(["job"]) == statuses(("job", Status.OK))

    info = q.inspect("job")
    assert (info.state, info.attempt, info.max_attempts) == (State.WAITING, 0, 2)
    assert (info.outcome, info.finished_ms, info.deadline_ms) == (Outcome.NONE, 0, 0)
    assert info.ready_ms == T0 + 100
    assert r.zscore(dead_key, "job") is None
    assert r.zscore(ready_key, "job") is not None
    again = q.claim("worker-b").jobs
    assert [(job.id, job.attempt) for job in again] == [("job", 1)]
    assert again[0].token.startswith("1-")
    assert q.complete(again[0], "finally") is True
    info = q.inspect("job")
    assert (info.state, info.result, info.attempt) == (State.COMPLETED, "finally", 1)


def test_a_requeued_job_gets_its_whole_attempt_budget_again(q: Queue) -> None:
    make_dead(q, "job", max_attempts=2, backoff_ms=0)
    q.requeue(["job"])
    first = q.claim("worker-a").jobs[0]
    assert q.fail(first, "again").outcome is Outcome.RETRY
    second = q.claim("worker-a").jobs[0]
    assert second.attempt == 2
    assert q.fail(second, "again").outcome is Outcome.DEAD


def test_without_ids_the_oldest_dead_jobs_are_requeued_up_to_limit(
    r: redis.Redis, q: Queue
) -> None:
    for job_id in ("a", "b", "c"):
        q.enqueue(job_id, id=job_id)
    leases = {job.id: job for job in q.claim("worker-a", count=3).jobs}
    for job_id in ("c", "a", "b"):
        move_clock(r, 10)
        q.fail(leases[job_id], "broken", retryable=False)

    assert q.requeue(limit=2) == statuses(("c", Status.OK), ("a", Status.OK))

    assert [q.inspect(i).state for i in ("a", "b", "c")] == [
        State.WAITING,
        State.DEAD,
        State.WAITING,
    ]
    assert q.requeue(limit=5) == statuses(("b", Status.OK))
    assert q.requeue(limit=5) == []


def test_each_id_gets_its_own_status_and_only_dead_jobs_move(q: Queue) -> None:
    seeded = seed_every_state(q)
    others = [job_id for state, job_id in seeded.items() if state is not State.DEAD]

    reply = q.requeue([*others, "missing", seeded[State.DEAD]])

    assert reply == statuses(
        *((job_id, Status.BAD_STATE) for job_id in others),
        ("missing", Status.NOT_FOUND),
        (seeded[State.DEAD], Status.OK),
    )
    for state, job_id in seeded.items():
        expected = State.WAITING if state is State.DEAD else state
        assert q.inspect(job_id).state is expected


def test_jobs_that_are_not_dead_are_left_exactly_as_they_were(
    q: Queue, db_snapshot: Snapshot
) -> None:
    seeded = seed_every_state(q)
    others = [job_id for state, job_id in seeded.items() if state is not State.DEAD]
    before = db_snapshot()

    reply = q.requeue([*others, "missing"])

    assert [item.status for item in reply] == [Status.BAD_STATE] * len(others) + [Status.NOT_FOUND]
    assert without_requests(db_snapshot()) == without_requests(before)


def test_the_same_id_twice_moves_the_job_once(q: Queue) -> None:
    make_dead(q, "job")
    assert q.requeue(["job", "job"]) == statuses(("job", Status.OK), ("job", Status.BAD_STATE))
    assert q.stats().counts[State.WAITING] == 1


def test_the_last_error_is_kept_until_the_job_fails_again(q: Queue) -> None:
    make_dead(q, "job", error="first failure")
    q.requeue(["job"])
    assert q.inspect("job").error == "first failure"
    lease = q.claim("worker-a").jobs[0]
    assert q.inspect("job").error == "first failure"

    q.fail(lease, "second failure", retryable=False)

    info = q.inspect("job")
    assert (info.state, info.error) == (State.DEAD, "second failure")


def test_requeue_wakes_an_idle_worker(r: redis.Redis, q: Queue) -> None:
    make_dead(q, "job")
    wake_key = q.ops.keys.key("wake")
    r.delete(wake_key)
    q.requeue(["job"])
    assert r.blpop([wake_key], timeout=1) is not None


BAD_REQUESTS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((["a b"],), {}),
    ((["a|b"],), {}),
    ((["a,b"],), {}),
    ((["a{b}"],), {}),
    (([""],), {}),
    ((["x" * 129],), {}),
    ((["dead-1", 7],), {}),
    (("dead-1",), {}),
    ((["dead-1"] * 1_001,), {}),
    ((), {"limit": 0}),
    ((), {"limit": 1_001}),
    ((), {"limit": True}),
    ((), {"limit": 2.0}),
]
"""Arguments requeue must refuse: ids that are not ids, too many ids, a limit out of range."""


@pytest.mark.parametrize(("args", "kwargs"), BAD_REQUESTS)
def test_bad_arguments_are_refused_and_change_nothing(
    q: Queue, db_snapshot: Snapshot, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    seed_every_state(q)
    before = db_snapshot()
    with pytest.raises(ValidationError):
        q.requeue(*args, **kwargs)
    assert db_snapshot() == before


# -- a repeated call -----------------------------------------------------------------------------


def test_a_repeated_requeue_by_limit_acts_on_nothing_new(r: redis.Redis, q: Queue) -> None:
    """Item 13 of the hardening issue: redis-py resends a call whose reply was lost. The
    "first N" form must not requeue the next N on the repeat: the request id makes the repeat
    answer as the first call did, and change nothing."""
    for n in range(4):
        make_dead(q, f"dead-{n}")
    call = q.ops.requeue(limit=2)

    first = call.parse(run_script(r, q, "requeue", list(call.args)))
    again = call.parse(run_script(r, q, "requeue", list(call.args)))

    assert [item.id for item in first] == ["dead-0", "dead-1"]
    assert again == first
    assert q.stats().counts[State.DEAD] == 2
    assert q.requeue(limit=2, request_id="mine") == q.requeue(limit=2, request_id="mine")
    assert q.stats().counts[State.DEAD] == 0


def test_a_request_id_is_forgotten_after_the_repeat_window(
    r: redis.Redis, make_queue: Callable[..., Queue]
) -> None:
    q = make_queue("test", retention=Retention(repeat_window_ms=1_000))
    make_dead(q, "a")
    assert q.requeue(limit=5, request_id="r-1")[0].status is Status.OK
    move_clock(r, 1_000)
    q.reap()
    assert not r.hexists(q.ops.keys.key("requests"), "r-1")
    assert q.requeue(limit=5, request_id="r-1") == []


def test_a_request_id_used_by_another_kind_of_call_is_refused(q: Queue) -> None:
    make_dead(q, "a")
    q.enqueue("x", id="b")
    q.claim("w", claim_id="shared-id")
    with pytest.raises(ScriptError, match="request_id"):
        q.requeue(limit=5, request_id="shared-id")
    assert q.inspect("a").state is State.DEAD
    q.requeue(limit=5, request_id="other-id")
    with pytest.raises(ScriptError, match="claim_id"):
        q.claim("w", claim_id="other-id")
