"""A fleet restarted with SIGTERM, again and again, against a job that outlives the grace period:
the job ends in the dead letters at exactly ``max_attempts``, and the jobs around it complete
exactly once.

A producer enqueues a steady stream of good jobs. For each overrun job (its payload asks the
handler for a 30 s side effect, which never looks at the job's cancel flag; marked ``overrun``
in the history; ``max_attempts`` 3), an agent (``tests.faults.agent``, grace period 0.3 s) is
started, and once the job's side effect has begun there, the agent is sent SIGTERM (a ``term``
fault): it stops claiming, lets running jobs finish within the grace period, hands back what is
left (the overrun job, with the report that its handler began) and exits. A fresh agent is
started, and so on: each hand-back keeps the attempt counted, and the last one sends the job to
the dead letters (outcome ``returned``, "handed back unfinished on attempt 3 of 3 (worker
...)"). Then a thread worker drains the good jobs left.
"""

from __future__ import annotations

import os
import signal
from functools import partial
from pathlib import Path

import pytest

from scheduler import JobOptions, State
from scheduler._local_redis import LocalRedis
from tests.faults.harness import (
    SLOW,
    Outcome,
    Producer,
    agent_records,
    client_for,
    completed_count,
    end_process,
    finish,
    job_options,
    recording_queue,
    run_folder,
    spawn_agent,
    thread_workers,
    wait_for,
)
from tests.faults.history import HistoryWriter, read_history
from tests.faults.recorder import RecordingQueue

LEASE_MS = 1000
GRACE_S = 0.3
OVERRUN_S = 30.0
"""The overrun job's side effect: far past the grace period (the process exits meanwhile)."""
MAX_ATTEMPTS = 3
DEFAULT_SIZE = 1
"""Overrun jobs in the default run (one agent per attempt of each)."""
SLOW_SIZE = 5
COMMAND = "SCHEDULER_SLOW=1 .venv/bin/python -m pytest -m slow tests/faults/test_restart_loop.py"


def began(folder: Path, name: str, job_id: str) -> bool:
    """True once agent ``name`` has begun ``job_id``'s side effect."""
    records = agent_records(folder, name)
    return any(r.kind == "effect_start" and r.job_id == job_id for r in records)


def restart_loop(url: str, folder: Path, writer: HistoryWriter, job_id: str) -> list[int]:
    """One agent per attempt of ``job_id``, each sent SIGTERM once the job began there; returns
    the agents' exit codes."""
    codes = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        name = f"{job_id}-agent-{attempt}"
        agent = spawn_agent(
            url, folder, name, "--lease-ms", str(LEASE_MS), "--grace-s", str(GRACE_S),
            "--concurrency", "4",
        )  # fmt: skip
        try:
            wait_for(lambda name=name: began(folder, name, job_id), 30, f"{job_id} in {name}")  # type: ignore[misc]
            writer.write("test", "fault", "term", target=name, job_id=job_id)
            os.kill(agent.pid, signal.SIGTERM)
            codes.append(agent.wait(GRACE_S + 10))
        finally:
            end_process(agent)
    return codes


def handed_back(folder: Path) -> int:
    """How many leases of jobs other than the overrun ones the stopped agents handed back."""
    return sum(
        1
        for r in read_history(folder)
        if (r.kind, r.op, r.status) == ("ok", "release", "ok")
        and not (r.job_id or "").startswith("overrun-")
    )


def dead(queue: RecordingQueue, job_id: str) -> bool:
    """True once ``job_id`` is in the dead letters."""
    return queue.inspect(job_id).state is State.DEAD


def overrun(producer: RecordingQueue, job_id: str) -> None:
    """Mark and enqueue a job whose side effect outlives every grace period."""
    producer.history.write("test", "fault", "overrun", job_id=job_id)
    options = JobOptions(lease_ms=LEASE_MS, max_attempts=MAX_ATTEMPTS, backoff_ms=0, jitter=0.0)
    producer.enqueue({"effect_s": OVERRUN_S}, id=job_id, options=options)


def scenario(size: int) -> Outcome:
    """``size`` overrun jobs, one after the other, each through :data:`MAX_ATTEMPTS` agents."""
    codes: list[int] = []
    with LocalRedis() as server, run_folder("sigterm") as folder:
        writer = HistoryWriter(folder, "test")
        client = client_for(server.url)
        producer = recording_queue(client, writer, "producer")
        looping = [True]
        with Producer(
            recording_queue(client, writer, "stream"),
            1,
            job_options(LEASE_MS),
            interval_s=0.05,
            keep_going=lambda: looping[0],
        ) as stream:
            for n in range(size):
                job_id = f"overrun-{n}"
                overrun(producer, job_id)
                codes += restart_loop(server.url, folder, writer, job_id)
                wait_for(partial(dead, producer, job_id), 10, f"{job_id} dead")
            looping[0] = False
            wait_for(stream.done, 30, "the producer")
        worker = recording_queue(client, writer, "drain")
        with thread_workers([worker], effect_s=0.02, concurrency=4, lease_ms=LEASE_MS):
            wait_for(lambda: completed_count(worker) >= stream.enqueued, 60, "every job done")
        report = finish("SIGTERM restart loop, a job past the grace period", folder, worker, None)
        handed = handed_back(folder)
        client.close()
    notes = (
        f"{len(codes)} agents stopped with SIGTERM, {handed} other jobs handed back on the way, "
        f"exit codes {sorted(set(codes))}"
    )
    return Outcome(report, COMMAND, notes=notes, figures={"terms": len(codes)})


def check_outcome(outcome: Outcome, size: int) -> None:
    """Each overrun job dead at max attempts after that many starts; nothing else wrong."""
    report = outcome.report
    assert report.problems() == [], report.problems()
    assert report.marked == {"overrun": size}
    assert outcome.figures["terms"] == size * MAX_ATTEMPTS
    assert outcome.notes.endswith("exit codes [0]"), outcome.notes
    assert report.max_accepted == 1
    # the overrun jobs' starts beyond the first; a job that finished within the grace period,
    # or was handed back before it began, never runs twice
    assert report.duplicates == size * (MAX_ATTEMPTS - 1)


def test_a_job_that_outlives_every_grace_period_ends_dead_at_max_attempts() -> None:
    check_outcome(scenario(DEFAULT_SIZE), DEFAULT_SIZE)


@pytest.mark.slow
@pytest.mark.skipif(not SLOW, reason="the larger run: SCHEDULER_SLOW=1 pytest -m slow")
def test_a_job_that_outlives_every_grace_period_ends_dead_at_max_attempts_many_times() -> None:
    check_outcome(scenario(SLOW_SIZE), SLOW_SIZE)
