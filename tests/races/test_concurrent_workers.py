"""Race tests: several threads and several processes claim, heartbeat, fail and complete jobs of
one queue at the same time, on a real Redis. Afterwards: no job lost, every job in exactly one
final state, at most one accepted completion per job, and no two leases of one job accepted.

Each participant records every accepted completion (job id, token); the checks read those
records and Redis. Sizes are small for the default run.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import random
import threading
from collections import Counter
from typing import Any

import pytest
import redis

from scheduler import JobOptions, JobSpec, LeaseLost, Queue, State, Status

JOBS = 600
THREADS = 4
PROCESSES = 2
QUEUE = "race"


def participant(url: str, name: str, seed: int, pause_s: float) -> list[tuple[str, str]]:
    """Claim batches until the queue is drained; randomly fail (retry), heartbeat, hand back or
    complete each job, sometimes pausing ``pause_s`` first (past a short lease: a stale worker).
    Returns the (job id, token) of every completion Redis accepted, then one ("", "refused")
    per completion refused as stale."""
    rng = random.Random(seed)
    client = redis.Redis.from_url(url)
    queue = Queue(client, QUEUE)
    accepted: list[tuple[str, str]] = []
    refused = [0]  # completions refused as stale: their lease had been taken meanwhile
    idle_rounds = 0
    while idle_rounds < 50:
        jobs = queue.claim(name, count=rng.randint(1, 8)).jobs
        if not jobs:
            idle_rounds += 1
            threading.Event().wait(0.005)
            continue
        idle_rounds = 0
        if rng.random() < 0.3:
            queue.heartbeat(jobs)
        to_complete = []
        for job in jobs:
            roll = rng.random()
            if roll < 0.1:
                with contextlib.suppress(LeaseLost):
                    queue.fail(job, "flaky", delay_ms=0)
            elif roll < 0.12:
                queue.release([job])  # handed back: another participant takes it
            else:
                to_complete.append((job, name))
        if to_complete and pause_s and rng.random() < 0.05:
            threading.Event().wait(pause_s)  # a paused worker: its leases may be taken meanwhile
        if to_complete:
            statuses = queue.complete_many(to_complete)
            refused[0] += sum(1 for s in statuses if s.status is Status.LEASE_LOST)
            accepted += [
                (s.id, job.token)
                for (job, _), s in zip(to_complete, statuses, strict=True)
                if s.status is Status.OK
            ]
    client.close()
    return accepted + [("", "refused")] * refused[0]


def process_participant(url: str, name: str, seed: int, pause_s: float, out: Any) -> None:
    """A participant in a process of its own, sending its accepted completions back."""
    out.put(participant(url, name, seed, pause_s))


@pytest.mark.parametrize(
    ("lease_ms", "pause_s"),
    [(30_000, 0.0), (150, 0.3)],
    ids=["long-leases", "short-leases-with-paused-workers"],
)
def test_threads_and_processes_complete_every_job_exactly_once(
    redis_url: str, r: redis.Redis, lease_ms: int, pause_s: float
) -> None:
    queue = Queue(r, QUEUE)
    options = JobOptions(max_attempts=1000, backoff_ms=0, lease_ms=lease_ms)
    ids = [
        e.id
        for start in range(0, JOBS, 500)
        for e in queue.enqueue_many(
            [JobSpec(n, options=options) for n in range(start, min(JOBS, start + 500))]
        )
    ]
    results: list[list[tuple[str, str]]] = []
    lock = threading.Lock()

    def run_thread(n: int) -> None:
        accepted = participant(redis_url, f"thread-{n}", n, pause_s)
        with lock:
            results.append(accepted)

    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    processes = [
        context.Process(
            target=process_participant, args=(redis_url, f"proc-{n}", 100 + n, pause_s, out)
        )
        for n in range(PROCESSES)
    ]
    threads = [threading.Thread(target=run_thread, args=(n,)) for n in range(THREADS)]
    for p in processes:
        p.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for _ in processes:
        results.append(out.get(timeout=120))
    for p in processes:
        p.join(30)

    everything = [pair for part in results for pair in part]
    accepted = [pair for pair in everything if pair[0]]
    stale_refused = len(everything) - len(accepted)
    if pause_s:
        assert stale_refused > 0, "paused workers' stale completions were refused"
    per_job = Counter(job_id for job_id, _ in accepted)
    assert set(per_job) == set(ids), "every job completed"
    assert max(per_job.values()) == 1, "at most one accepted completion per job"
    counts = queue.stats(active_limit=0).counts
    assert counts[State.COMPLETED] == JOBS
    assert sum(n for state, n in counts.items() if state is not State.COMPLETED) == 0
    for job_id, token in accepted[:50]:
        info = queue.inspect(job_id)
        assert info.token == token, "the accepted completion carried the job's last lease"
