"""lua/purge.lua through Queue.purge, on a real Redis.

Covers every status the script replies with per id (ok, not_found, bad_state) and the refusals:
a purged completed, dead or cancelled job leaves no trace in any key (checked on the raw keys);
with no ids the oldest ``limit`` records of the state go; a job in another state is kept as it
was; purging waiting, delayed or active jobs, an unknown state or a bad id is refused before
anything is sent, and the database is unchanged.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis

from scheduler import ItemStatus, JobNotFound, JobOptions, Queue, State, Status, ValidationError
from tests.integration.helpers import (
    PER_JOB_HASHES,
    Snapshot,
    move_clock,
    run_script,
    seed_every_state,
    without_requests,
)

TARGET = "target"
"""The id of the job a test purges, beside the seeded jobs it must not touch."""

FINISHED = [State.COMPLETED, State.DEAD, State.CANCELLED]

pytestmark = pytest.mark.usefixtures("pinned_clock")


def raw_key(part: str) -> str:
    """The raw name of one of queue ``test``'s keys, spelled out (not built by the client)."""
    return "scheduler:{test}:" + part


def make_finished(q: Queue, state: State, job_id: str) -> None:
    """Put ``job_id`` in a finished ``state`` with as many traces as that state can have:
    a completed job also failed once (so it has an error and a result), a dead job has an
    error, a cancelled one only its record and payload. Its top priority puts it ahead of any
    other waiting job."""
    q.enqueue({"job": job_id}, id=job_id, options=JobOptions(priority=1_000))
    if state is State.CANCELLED:
        q.cancel(job_id)
    else:
        lease = q.claim("worker-a").jobs[0]
        assert lease.id == job_id
        if state is State.DEAD:
            q.fail(lease, "broken", retryable=False)
        else:
            q.fail(lease, "transient", delay_ms=0)
            again = q.claim("worker-a").jobs[0]
            assert again.id == job_id
            q.complete(again, {"result": job_id})
    assert q.inspect(job_id).state is state


def without_job(snapshot: dict[bytes, Any], job_id: str) -> dict[bytes, Any]:
    """``snapshot`` with every hash field and ZSET member named ``job_id`` removed (and keys
    left empty dropped, as Redis drops them)."""
    member = job_id.encode()
    result: dict[bytes, Any] = {}
    for key, (kind, contents) in snapshot.items():
        if kind == "hash":
            contents = {field: v for field, v in contents.items() if field != member}
        elif kind == "zset":
            contents = [(m, score) for m, score in contents if m != member]
        if contents:
            result[key] = (kind, contents)
    return result


@pytest.mark.parametrize("state", FINISHED)
def test_a_purged_job_leaves_no_trace(
    r: redis.Redis, q: Queue, db_snapshot: Snapshot, state: State
) -> None:
    seed_every_state(q)
    make_finished(q, state, TARGET)
    present = {part for part in PER_JOB_HASHES if r.hexists(raw_key(part), TARGET)}
    assert present >= {"meta", "payload"}
    assert state is not State.COMPLETED or present == set(PER_JOB_HASHES)
    assert r.zscore(raw_key(state.value), TARGET) is not None
    before = db_snapshot()

    assert q.purge(state, [TARGET]) == [ItemStatus(TARGET, Status.OK)]

    for part in PER_JOB_HASHES:
        assert not r.hexists(raw_key(part), TARGET), part
    assert r.zscore(raw_key(state.value), TARGET) is None
    assert without_requests(db_snapshot()) == without_requests(without_job(before, TARGET))
    with pytest.raises(JobNotFound):
        q.inspect(TARGET)


def test_a_purged_id_can_be_used_for_a_new_job(q: Queue) -> None:
    make_finished(q, State.COMPLETED, TARGET)
    q.purge("completed", [TARGET])
    assert q.enqueue("fresh", id=TARGET).created is True
    info = q.inspect(TARGET)
    assert (info.state, info.payload, info.result, info.error) == (
        State.WAITING,
        "fresh",
        None,
        None,
    )


@pytest.mark.parametrize("state", FINISHED)
def test_without_ids_the_oldest_records_of_the_state_go_up_to_limit(
    r: redis.Redis, q: Queue, state: State
) -> None:
    seed_every_state(q)
    for job_id in ("old", "middle", "new"):
        move_clock(r, 10)
        make_finished(q, state, job_id)
    seeded = f"{state.value}-1"

    assert q.purge(state, limit=2) == [
        ItemStatus(seeded, Status.OK),
        ItemStatus("old", Status.OK),
    ]

    assert r.zrange(raw_key(state.value), 0, -1) == [b"middle", b"new"]
    assert q.purge(state, limit=100) == [
        ItemStatus("middle", Status.OK),
        ItemStatus("new", Status.OK),
    ]
    assert q.purge(state, limit=100) == []
    assert q.stats().counts[state] == 0


@pytest.mark.parametrize("state", FINISHED)
def test_jobs_in_another_state_or_missing_are_kept_and_named(
    q: Queue, db_snapshot: Snapshot, state: State
) -> None:
    seeded = seed_every_state(q)
    others = [job_id for s, job_id in seeded.items() if s is not state]
    before = db_snapshot()

    reply = q.purge(state, [*others, "missing"])

    assert reply == [ItemStatus(job_id, Status.BAD_STATE) for job_id in others] + [
        ItemStatus("missing", Status.NOT_FOUND)
    ]
    assert without_requests(db_snapshot()) == without_requests(before)


def test_one_call_mixes_deleted_kept_and_missing_ids(q: Queue, db_snapshot: Snapshot) -> None:
    seeded = seed_every_state(q)
    make_finished(q, State.DEAD, TARGET)
    before = db_snapshot()

    reply = q.purge(State.DEAD, [seeded[State.COMPLETED], TARGET, "missing"])

    assert reply == [
        ItemStatus(seeded[State.COMPLETED], Status.BAD_STATE),
        ItemStatus(TARGET, Status.OK),
        ItemStatus("missing", Status.NOT_FOUND),
    ]
    assert without_requests(db_snapshot()) == without_requests(without_job(before, TARGET))


REFUSED: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = [
    (State.WAITING, (), {}),
    (State.ACTIVE, (["active-1"],), {}),
    (State.DELAYED, (), {}),
    ("waiting", (["waiting-1"],), {}),
    ("active", (), {}),
    ("finished", (), {}),
    ("", (), {}),
    ("DEAD", (), {}),
    ("dead ", (), {}),
    (None, (), {}),
    ("dead", (["a b"],), {}),
    ("dead", (["a|b"],), {}),
    ("dead", (["a,b"],), {}),
    ("dead", (["{test}"],), {}),
    ("dead", ([""],), {}),
    ("dead", (["x" * 129],), {}),
    ("dead", ("dead-1",), {}),
    ("dead", (["dead-1"] * 1_001,), {}),
    ("dead", (), {"limit": 0}),
    ("dead", (), {"limit": 1_001}),
    ("dead", (), {"limit": False}),
]
"""purge calls that must be refused: states that are not finished (or not states at all), ids
that are not ids, too many ids, a limit out of range."""


@pytest.mark.parametrize(("state", "args", "kwargs"), REFUSED)
def test_refused_calls_send_nothing(
    unreachable_queue: Queue, state: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        unreachable_queue.purge(state, *args, **kwargs)


@pytest.mark.parametrize(("state", "args", "kwargs"), REFUSED)
def test_refused_calls_change_nothing(
    q: Queue, db_snapshot: Snapshot, state: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    seed_every_state(q)
    before = db_snapshot()
    with pytest.raises(ValidationError):
        q.purge(state, *args, **kwargs)
    assert db_snapshot() == before


def test_the_unreachable_queue_does_fail_when_it_sends(unreachable_queue: Queue) -> None:
    """The control for :func:`test_refused_calls_send_nothing`: a valid call does reach out."""
    with pytest.raises(redis.ConnectionError):
        unreachable_queue.purge(State.DEAD)


# -- a repeated call -----------------------------------------------------------------------------


@pytest.mark.parametrize("state", FINISHED)
def test_a_repeated_purge_by_limit_deletes_nothing_more(
    r: redis.Redis, q: Queue, state: State
) -> None:
    """Item 13 of the hardening issue: the repeat of a purge of "the first N" (redis-py resends
    a call whose reply was lost) answers as the first call did and deletes nothing more."""
    for n in range(4):
        make_finished(q, state, f"job-{n}")
    call = q.ops.purge(state, limit=2)

    first = call.parse(run_script(r, q, "purge", list(call.args)))
    again = call.parse(run_script(r, q, "purge", list(call.args)))

    assert len(first) == 2 and again == first
    assert q.stats().counts[state] == 2
