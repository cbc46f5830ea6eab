"""Plain helpers shared by the integration tests (the fixtures built on them are in
:mod:`tests.integration.conftest`).

* the test clock: :data:`T0`, the instant the ``test`` queue's clock is pinned at, and
  :func:`move_clock`;
* leases: :func:`claim_one` and :func:`leased` (enqueue one job and claim it);
* what is stored where: :func:`locations` (the keys that hold a job id) and :func:`run_script`
  (a script called directly, past every check the client makes);
* a populated queue: :func:`seed_every_state`, one job in each state, and :func:`counts`, the
  counts mapping a test expects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis

from scheduler import Job, JobOptions, Queue, State
from scheduler._scripts import all_scripts
from scheduler.testing import advance_clock

QUEUE_NAME = "test"
"""The name of the queue the ``q`` fixture builds, whose clock the clock helpers move."""

T0 = 1_700_000_000_000
"""The instant the ``test`` queue's clock is pinned at (Unix ms), so times in replies and
records are exact (see the ``pinned_clock`` fixture)."""

MADE_UP_TOKEN = "1-0123456789abcdef"
"""A well-formed lease token that no claim handed out."""

PER_JOB_HASHES = ("meta", "payload", "result", "error")
"""The hashes of a queue that hold a field per job (its record, payload, result, last error)."""

STATE_ZSETS = ("ready", "delayed", "active", "completed", "dead", "cancelled")
"""The ZSETs of a queue that hold a job id as a member, one per state (waiting jobs in
``ready``)."""

JOB_PARTS = (*PER_JOB_HASHES, *STATE_ZSETS)
"""The key parts of a queue that can hold a job id (as a hash field or a ZSET member)."""

Snapshot = Callable[[], dict[bytes, Any]]
"""The ``db_snapshot`` fixture: call it for the whole database's contents."""


def move_clock(r: redis.Redis, ms: int) -> None:
    """Move the ``test`` queue's clock ``ms`` ahead (a pinned clock stays pinned)."""
    advance_clock(r, QUEUE_NAME, ms)


def claim_one(q: Queue, worker: str = "worker-a", *, lease_ms: int | None = None) -> Job:
    """Claim exactly one job for ``worker`` (with ``lease_ms``, if given) and return its lease."""
    jobs = q.claim(worker, lease_ms=lease_ms).jobs
    assert len(jobs) == 1
    return jobs[0]


def leased(
    q: Queue,
    payload: Any = "work",
    *,
    options: JobOptions | None = None,
    worker: str = "worker-a",
    job_id: str | None = None,
) -> Job:
    """Enqueue one job (``job_id`` if given) and claim it for ``worker``: the lease of a fresh
    job. Fails if the claim hands out any other job."""
    enqueued_id = q.enqueue(payload, id=job_id, options=options).id
    job = claim_one(q, worker)
    assert job.id == enqueued_id
    return job


def locations(r: redis.Redis, q: Queue, job_id: str) -> set[str]:
    """The key parts of ``q`` (from :data:`JOB_PARTS`) that hold ``job_id``, as a hash field or
    a ZSET member."""
    found = set()
    for part in JOB_PARTS:
        key = q.ops.keys.key(part)
        kind = r.type(key)
        if (kind == b"hash" and r.hexists(key, job_id)) or (
            kind == b"zset" and r.zscore(key, job_id) is not None
        ):
            found.add(part)
    return found


def run_script(r: redis.Redis, q: Queue, script: str, args: list[Any]) -> Any:
    """Send ``args`` as ARGV to ``script`` (``"claim"``, ``"fail"``, ...) directly, with the keys
    of queue ``q``: past every check the client makes. Returns the raw reply."""
    source = all_scripts()[script]
    registered = r.register_script(source.text)
    return registered(keys=q.ops.keys.keys(source.key_parts), args=args)


SEED_IDS: dict[State, str] = {
    State.WAITING: "waiting-1",
    State.DELAYED: "delayed-1",
    State.ACTIVE: "active-1",
    State.COMPLETED: "completed-1",
    State.DEAD: "dead-1",
    State.CANCELLED: "cancelled-1",
}
"""The job id :func:`seed_every_state` puts in each state."""


def seed_every_state(q: Queue, worker: str = "seed-worker") -> dict[State, str]:
    """Put one job in each of the six states on ``q``; returns state -> job id.

    The completed job keeps a result, the dead one an error; the delayed job is due in a minute
    and the active job's lease runs for the default 30 s, both on the queue's clock.
    """
    for state in (State.COMPLETED, State.DEAD, State.ACTIVE):
        q.enqueue(state.value, id=SEED_IDS[state])
    completed, dead, active = q.claim(worker, count=3).jobs
    assert [completed.id, dead.id, active.id] == [
        SEED_IDS[State.COMPLETED],
        SEED_IDS[State.DEAD],
        SEED_IDS[State.ACTIVE],
    ]
    q.complete(completed, {"answer": 42})
    q.fail(dead, "broken for good", retryable=False)
    q.enqueue("cancelled", id=SEED_IDS[State.CANCELLED])
    q.cancel(SEED_IDS[State.CANCELLED])
    q.enqueue("waiting", id=SEED_IDS[State.WAITING])
    q.enqueue("delayed", id=SEED_IDS[State.DELAYED], options=JobOptions(delay_ms=60_000))
    for state, job_id in SEED_IDS.items():
        assert q.inspect(job_id).state is state
    return dict(SEED_IDS)


def counts(**non_zero: int) -> dict[State, int]:
    """A full counts mapping: every state 0 except the ones named (``waiting=2``, ...)."""
    return {state: non_zero.get(state.value, 0) for state in State}


REQUEST_PARTS = ("requests", "request_exp")
"""The keys where claims, requeues and purges are remembered by request id (for a repeat)."""


def without_requests(snapshot: dict[bytes, Any]) -> dict[bytes, Any]:
    """A database snapshot without the request records, to compare the job state a call left
    (a requeue or purge that moved nothing still remembers its request id)."""
    return {
        key: value
        for key, value in snapshot.items()
        if not any(key.endswith(f":{part}".encode()) for part in REQUEST_PARTS)
    }
