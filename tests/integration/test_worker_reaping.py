"""Workers reap their queue themselves, about every second, so recovery and trimming do not
depend on claims: a worker whose every slot is busy with a long job (it claims nothing)
still recovers another worker's expired lease within ``lease + ~1.5 s`` and trims expired
finished records. For both workers."""

from __future__ import annotations

import pytest

from scheduler import JobNotFound, JobOptions, Queue, State
from scheduler._worker_core import REAP_INTERVAL_S, REAP_JITTER
from tests.integration.worker_kinds import KINDS, RunningWorker, eventually, hold

pytestmark = pytest.mark.parametrize("kind", KINDS)

LEASE_MS = 1000
BOUND_S = LEASE_MS / 1000 + REAP_INTERVAL_S * (1 + REAP_JITTER) + 0.3  # + polling and a call


def busy_worker(kind: str, q: Queue, redis_url: str) -> RunningWorker:
    """A worker with one slot, busy with a job that outlasts the test: it claims nothing."""
    q.enqueue(hold(60))
    worker = RunningWorker(kind, redis_url, concurrency=1, prefetch=0, grace_s=0).start()
    eventually(lambda: len(worker.behaviour.seen("start")) == 1, "its slot to be busy")
    return worker


def test_a_busy_worker_recovers_another_workers_expired_lease(
    kind: str, q: Queue, redis_url: str
) -> None:
    worker = busy_worker(kind, q, redis_url)
    try:
        claims_before = len(worker.calls.sizes("claim"))
        lost_id = q.enqueue("left behind", options=JobOptions(lease_ms=LEASE_MS)).id
        assert [j.id for j in q.claim("vanished", lease_ms=LEASE_MS).jobs] == [lost_id]
        took = eventually(
            lambda: q.inspect(lost_id).state is State.WAITING,
            "the expired lease to be reaped",
            timeout_s=BOUND_S + 3,
        )
        assert len(worker.calls.sizes("claim")) == claims_before, "it did not claim meanwhile"
        assert worker.calls.sizes("reap"), "its own reap did it"
    finally:
        worker.stop_and_join()
    print(f"\n{kind} worker: an expired lease of {LEASE_MS} ms was back in {took:.2f} s")
    assert took <= BOUND_S


def test_a_busy_worker_trims_expired_finished_records(kind: str, q: Queue, redis_url: str) -> None:
    worker = busy_worker(kind, q, redis_url)
    try:
        job_id = q.enqueue("short-lived", options=JobOptions(keep_result_ms=200)).id
        (leased,) = q.claim("someone").jobs
        assert q.complete(leased, "done") is True
        claims_before = len(worker.calls.sizes("claim"))

        def trimmed() -> bool:
            try:
                q.inspect(job_id)
            except JobNotFound:
                return True
            return False

        took = eventually(trimmed, "the record to be trimmed", timeout_s=BOUND_S + 3)
        assert len(worker.calls.sizes("claim")) == claims_before, "no claim traffic"
    finally:
        worker.stop_and_join()
    assert took <= 0.2 + REAP_INTERVAL_S * (1 + REAP_JITTER) + 0.3
