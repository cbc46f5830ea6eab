"""The thread-pool worker end to end on a real Redis: concurrency, retries, lease loss, time
limits, graceful hand-back and waking on new work. Every wait is a poll with a deadline."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis

from scheduler import Job, JobOptions, JobSpec, Queue, State
from scheduler.testing import advance_clock
from scheduler.worker import JobContext, NonRetryable, Worker

DEADLINE_S = 10.0


def eventually(check: Callable[[], bool], what: str, timeout_s: float = DEADLINE_S) -> None:
    """Poll ``check`` until it holds, failing after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        pause.wait(0.01)


@contextmanager
def running(worker: Worker) -> Iterator[Worker]:
    """Run ``worker`` in a thread for the block; stop it and join it (bounded) afterwards."""
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(DEADLINE_S + worker.grace_s)
        assert not thread.is_alive(), "the worker did not stop"


def states(q: Queue, ids: list[str]) -> list[State]:
    return [q.inspect(job_id).state for job_id in ids]


def test_every_job_runs_once_and_concurrency_is_respected(q: Queue) -> None:
    ids = [e.id for e in q.enqueue_many([JobSpec(n) for n in range(60)])]
    lock, now_running, peak = threading.Lock(), [0], [0]

    def handler(job: Job, context: JobContext) -> int:
        with lock:
            now_running[0] += 1
            peak[0] = max(peak[0], now_running[0])
        threading.Event().wait(0.005)
        with lock:
            now_running[0] -= 1
        return int(job.payload) * 2

    with running(Worker(q, handler, concurrency=3)):
        eventually(lambda: q.stats().counts[State.COMPLETED] == 60, "all 60 jobs completed")
    assert peak[0] <= 3
    assert {q.inspect(job_id).result for job_id in ids} == {n * 2 for n in range(60)}
    assert all(q.inspect(job_id).attempt == 1 for job_id in ids)


def test_failures_are_retried_and_non_retryable_ones_dead_lettered(q: Queue) -> None:
    flaky = q.enqueue("flaky", options=JobOptions(backoff_ms=0, max_attempts=3)).id
    poison = q.enqueue("poison", options=JobOptions(max_attempts=5)).id
    tries: dict[str, int] = {}

    def handler(job: Job, context: JobContext) -> str:
        tries[job.id] = tries.get(job.id, 0) + 1
        if job.payload == "poison":
            raise NonRetryable("never works")
        if job.attempt < 3:
            raise RuntimeError("not yet")
        return "finally"

    with running(Worker(q, handler, concurrency=2)):
        eventually(lambda: states(q, [flaky, poison]) == [State.COMPLETED, State.DEAD], "settled")
    assert tries == {flaky: 3, poison: 1}
    assert "NonRetryable: never works" in (q.inspect(poison).error or "")


def test_a_lost_lease_cancels_the_job_and_discards_its_result(q: Queue, r: redis.Redis) -> None:
    job_id = q.enqueue("slow", options=JobOptions(lease_ms=1000)).id
    started, saw_cancel = threading.Event(), threading.Event()

    def handler(job: Job, context: JobContext) -> str:
        if job.attempt > 1:
            return "second run"
        started.set()
        if context.cancelled.wait(DEADLINE_S):
            saw_cancel.set()
        return "first run, too late"

    with running(Worker(q, handler)):
        eventually(started.is_set, "the job started")
        advance_clock(r, "test", 5000)  # the lease is now past its deadline: lost
        eventually(saw_cancel.is_set, "the first run saw the cancel flag")
        eventually(lambda: q.inspect(job_id).state is State.COMPLETED, "the job completed")
    info = q.inspect(job_id)
    assert (info.attempt, info.result) == (2, "second run")


def test_a_heartbeat_reporting_the_lease_lost_cancels_the_job(q: Queue, r: redis.Redis) -> None:
    job_id = q.enqueue("slow", options=JobOptions(lease_ms=1000)).id
    started, saw_cancel = threading.Event(), threading.Event()

    def handler(job: Job, context: JobContext) -> str:
        started.set()
        if context.cancelled.wait(DEADLINE_S):
            saw_cancel.set()
        return "too late"

    with running(Worker(q, handler, concurrency=1)):  # its one slot is busy: it claims nothing
        eventually(started.is_set, "the job started")
        advance_clock(r, "test", 5000)
        stolen = q.claim("other-worker").jobs  # reaps the expired lease and takes the job
        assert [j.id for j in stolen] == [job_id]
        eventually(saw_cancel.is_set, "the heartbeat reported the lease lost")
    assert q.complete(stolen[0], "the other worker's result") is True
    assert q.inspect(job_id).result == "the other worker's result"


def test_a_job_past_its_time_limit_fails_with_a_timeout(q: Queue) -> None:
    job_id = q.enqueue("forever", options=JobOptions(max_attempts=1)).id

    def handler(job: Job, context: JobContext) -> None:
        context.cancelled.wait(DEADLINE_S)

    with running(Worker(q, handler, time_limit_ms=100)):
        eventually(lambda: q.inspect(job_id).state is State.DEAD, "the job timed out")
    assert "time limit of 100 ms" in (q.inspect(job_id).error or "")


def test_stop_hands_unfinished_jobs_back_for_another_worker(q: Queue) -> None:
    ids = [e.id for e in q.enqueue_many([JobSpec(n) for n in range(2)])]
    started = threading.Semaphore(0)
    release_first = threading.Event()

    def stuck(job: Job, context: JobContext) -> None:
        started.release()
        release_first.wait(DEADLINE_S)

    worker = Worker(q, stuck, concurrency=2, grace_s=0.2)
    with running(worker):
        assert started.acquire(timeout=DEADLINE_S) and started.acquire(timeout=DEADLINE_S)
    release_first.set()
    assert states(q, ids) == [State.WAITING, State.WAITING]
    began = time.monotonic()
    with running(Worker(q, lambda job, context: "done", concurrency=2)):
        eventually(lambda: states(q, ids) == [State.COMPLETED] * 2, "the second worker ran them")
    assert time.monotonic() - began < 1.0, "handed-back jobs are taken at once, not after the lease"
    # Their handlers had begun, and the hand-back said so: the first attempt stays counted.
    assert all(q.inspect(job_id).attempt == 2 for job_id in ids)


def test_an_idle_worker_wakes_for_new_work(q: Queue) -> None:
    done = threading.Event()

    def handler(job: Job, context: JobContext) -> Any:
        done.set()

    with running(Worker(q, handler, max_idle_s=30)):
        eventually(lambda: q.stats().counts[State.WAITING] == 0, "the worker is idle")
        threading.Event().wait(0.1)  # let it block on the wake list
        began = time.monotonic()
        q.enqueue("wake up")
        assert done.wait(DEADLINE_S)
    assert time.monotonic() - began < 1.0, "woken by the signal, not by the 30 s idle timeout"


def test_stop_wakes_an_idle_worker_at_once(q: Queue) -> None:
    worker = Worker(q, lambda job, context: None, max_idle_s=30)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    threading.Event().wait(0.2)  # let it block on the wake list
    began = time.monotonic()
    worker.stop()
    thread.join(DEADLINE_S)
    assert not thread.is_alive()
    assert time.monotonic() - began < 2.0, "stopped by closing its connection, not by timeout"


def test_records_about_a_job_name_its_id_queue_attempt_and_worker(
    q: Queue, caplog: pytest.LogCaptureFixture
) -> None:
    job_id = q.enqueue("boom", options=JobOptions(max_attempts=1)).id

    def handler(job: Job, context: JobContext) -> None:
        raise RuntimeError("boom")

    with (
        caplog.at_level(logging.INFO, logger="scheduler.worker"),
        running(Worker(q, handler, worker_id="w-log")),
    ):
        eventually(lambda: q.inspect(job_id).state is State.DEAD, "the job died")
    records = [r for r in caplog.records if getattr(r, "job_id", None) == job_id]
    assert records, "a record about the job"
    record = records[0]
    assert (record.queue, record.attempt, record.worker) == ("test", 1, "w-log")  # type: ignore[attr-defined]
    assert job_id in record.getMessage() and "w-log" in record.getMessage()
