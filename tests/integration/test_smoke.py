"""The client reaches a real Redis and the basic cycle works end to end."""

from __future__ import annotations

from scheduler import Queue, State


def test_enqueue_claim_complete(q: Queue) -> None:
    job_id = q.enqueue({"n": 1}).id
    claimed = q.claim("worker-1")
    assert [job.id for job in claimed.jobs] == [job_id]
    assert q.complete(claimed.jobs[0], "done") is True
    info = q.inspect(job_id)
    assert info.state is State.COMPLETED
    assert info.result == "done"
