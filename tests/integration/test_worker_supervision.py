"""A worker whose helper fails (a bug, not a bad job) stops loudly, for both workers.

A ``RuntimeError`` is injected once into each loop's queue call (claim, complete_many, fail,
heartbeat, reap) while the worker holds leases. Then: ``run()`` raises ``WorkerCrashed`` with the
injected error as its cause; no heartbeat goes out after the failure (a worker that cannot
acknowledge must not keep leases alive); and every job comes back to another worker within
its lease plus the reaping bound (most are handed back at once).
"""

from __future__ import annotations

import pytest

from scheduler import JobOptions, JobSpec, Queue, State, WorkerCrashed
from tests.integration.worker_kinds import KINDS, Calls, RunningWorker, eventually, hold

LEASE_MS = 900
"""Short leases: heartbeats every 300 ms, so one sent after the failure would show."""
RECOVERY_S = LEASE_MS / 1000 + 1.5
"""A job whose lease the failed worker neither acknowledged nor handed back: lease + reaping."""

FAULTS = {
    "claim": 2,  # the first claim leased jobs; the second fails
    "complete_many": 1,
    "fail": 1,
    "heartbeat": 1,
    "reap": 1,
}


def payloads(method: str) -> list[object]:
    """Jobs that keep leases held when the fault strikes (and reach the failing call)."""
    if method == "fail":
        return [{"do": "raise_first"}] + [hold(0.5)] * 3
    if method == "complete_many":
        return ["quick"] + [hold(0.5)] * 3
    return [hold(0.6)] * 4


@pytest.mark.parametrize("method", list(FAULTS))
@pytest.mark.parametrize("kind", KINDS)
def test_a_failed_helper_stops_the_worker_and_its_jobs_come_back(
    kind: str, method: str, q: Queue, redis_url: str
) -> None:
    options = JobOptions(lease_ms=LEASE_MS, backoff_ms=0, max_attempts=5)
    ids = [e.id for e in q.enqueue_many([JobSpec(p, options=options) for p in payloads(method)])]
    calls = Calls(faults={method: FAULTS[method]})
    broken = RunningWorker(kind, redis_url, calls=calls, concurrency=2, prefetch=2).start()
    broken.join(timeout_s=15)  # it stops by itself
    assert isinstance(broken.error, WorkerCrashed), broken.error
    cause = broken.error.__cause__
    assert isinstance(cause, RuntimeError) and str(cause) == f"injected into {method}"
    assert calls.failed_at is not None
    late = [t - calls.failed_at for t in calls.times("heartbeat") if t > calls.failed_at + 0.05]
    assert late == [], "no heartbeat after the failure"
    assert not calls.times("claim") or max(calls.times("claim")) < calls.failed_at + 0.05

    other = RunningWorker(kind, redis_url, concurrency=4).start()
    try:
        took = eventually(
            lambda: [q.inspect(i).state for i in ids] == [State.COMPLETED] * len(ids),
            "every job completed by another worker",
            timeout_s=RECOVERY_S + 5,
        )
    finally:
        other.stop_and_join()
    assert other.error is None
    assert took < RECOVERY_S + 2.5, f"recovered in {took:.2f} s"
