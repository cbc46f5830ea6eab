"""Memory pressure: a server with a low ``maxmemory`` and ``noeviction``, filled with jobs until
Redis refuses an enqueue.

From then on every enqueue fails at once with ``ServerFull`` (also redis-py's
``OutOfMemoryError``: "command not allowed when used memory > 'maxmemory'") and
stores nothing, while the scripts flagged ``allow-oom`` keep the queue draining: a worker
claims and completes every job, the reaper gives back the leases of a worker that vanished
(within the bound), and once ``purge`` has deleted the completed records, enqueue works again.
"""

from __future__ import annotations

import pytest
import redis

from scheduler import JobNotFound, Queue, ServerFull, State
from scheduler._local_redis import LocalRedis
from tests.faults.harness import (
    REAP_INTERVAL_S,
    SLOW,
    Outcome,
    Reaper,
    client_for,
    completed_count,
    finish,
    job_options,
    recording_queue,
    run_folder,
    thread_workers,
    wait_for,
)
from tests.faults.history import HistoryWriter
from tests.faults.recorder import RecordingQueue

LEASE_MS = 500
PAYLOAD = b"x" * 16_384
DEFAULT_SIZE = 100
"""About how many jobs fit in the memory left to the queue in the default run."""
SLOW_SIZE = 1000
COMMAND = "SCHEDULER_SLOW=1 .venv/bin/python -m pytest -m slow tests/faults/test_memory_pressure.py"


def fill(producer: RecordingQueue, limit: int) -> tuple[int, redis.exceptions.OutOfMemoryError]:
    """Enqueue jobs until Redis refuses one; returns how many went in and the refusal."""
    options = job_options(LEASE_MS)
    for n in range(limit):
        try:
            producer.enqueue(PAYLOAD, id=f"job-{n}", options=options)
        except redis.exceptions.OutOfMemoryError as exc:
            return n, exc
    raise AssertionError(f"{limit} jobs fit: maxmemory was not reached")


def refused_again(producer: RecordingQueue, tag: str) -> str:
    """One more enqueue, which must be refused and leave nothing behind; returns its error."""
    job_id = f"refused-{tag}"
    with pytest.raises(ServerFull) as caught:
        producer.enqueue(PAYLOAD, id=job_id, options=job_options(LEASE_MS))
    with pytest.raises(JobNotFound):
        producer.inspect(job_id)
    return str(caught.value)


def purge_completed(queue: Queue) -> None:
    """Delete every completed record (bounded steps)."""
    for _ in range(1000):
        if not queue.purge(State.COMPLETED, limit=100):
            return


def scenario(size: int) -> Outcome:
    """Fill the server, abandon two leases, drain with a worker and a reaper; check; purge and
    enqueue again."""
    with (
        LocalRedis(extra_args=["--maxmemory-policy", "noeviction"]) as server,
        run_folder("memory") as folder,
    ):
        writer = HistoryWriter(folder, "test")
        client = client_for(server.url)
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", used + size * len(PAYLOAD))
        producer = recording_queue(client, writer, "producer")
        filled, first = fill(producer, size * 10)
        errors = {str(first), refused_again(producer, "full")}
        abandoned = recording_queue(client, writer, "abandoned")
        abandoned.claim("abandoned", count=2, lease_ms=LEASE_MS)
        writer.write("test", "fault", "kill", target="abandoned")  # it never comes back
        worker = recording_queue(client, writer, "worker")
        with (
            Reaper(recording_queue(client, writer, "reaper")),
            thread_workers([worker], effect_s=0.001, concurrency=4, lease_ms=LEASE_MS),
        ):
            errors.add(refused_again(producer, "draining"))
            wait_for(lambda: completed_count(worker) >= filled, 60, "the queue drained")
        errors.add(refused_again(producer, "drained"))
        bound_ms = LEASE_MS + REAP_INTERVAL_S * 1000
        report = finish("memory full (maxmemory, noeviction)", folder, worker, bound_ms)
        purge_completed(worker)  # what frees memory: deleting finished records
        created = producer.enqueue(b"small", id="after-purge", options=job_options(LEASE_MS))
        assert created.created, "enqueue works again once memory is freed"
        client.close()
    notes = f"{filled} jobs fit; refusals: {sorted(errors)}"
    return Outcome(report, COMMAND, notes=notes)


def check_outcome(outcome: Outcome) -> None:
    """The refusal is clear, nothing refused was stored, and the queue drained."""
    report = outcome.report
    assert report.problems() == [], report.problems()
    assert outcome.notes.endswith(
        'refusals: ["Redis is out of memory and refused the call: command not allowed when '
        "used memory > 'maxmemory'. (queue 'faults')\"]"
    ), outcome.notes
    assert len(report.recovery_ms) == 2, "both abandoned leases were reaped and claimed again"


def test_a_full_server_refuses_enqueue_and_still_drains() -> None:
    check_outcome(scenario(DEFAULT_SIZE))


@pytest.mark.slow
@pytest.mark.skipif(not SLOW, reason="the larger run: SCHEDULER_SLOW=1 pytest -m slow")
def test_a_full_server_refuses_enqueue_and_still_drains_at_scale() -> None:
    check_outcome(scenario(SLOW_SIZE))
