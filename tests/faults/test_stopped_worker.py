"""A worker paused with SIGSTOP past its lease while another takes its job, then resumed: its
completion reaches Redis and is refused; the job has exactly one accepted completion.

The paused worker is an agent process in ``plain`` mode (claim, side effect, complete, with no
heartbeat and no lease bookkeeping), so that nothing on the client side holds its completion
back: the refusal is Redis's. Each cycle enqueues three jobs, waits until the agent is inside
the side effect of one, stops it, lets the test's own recorded ``taker`` claim until it gets
that job again (its lease expired), completes it, resumes the agent and waits for the agent's
completion of the old lease.
"""

from __future__ import annotations

import os
import signal

import pytest

from scheduler import JobSpec, State
from scheduler._local_redis import LocalRedis
from tests.faults.harness import (
    REAP_INTERVAL_S,
    SLOW,
    Outcome,
    client_for,
    end_process,
    finish,
    job_options,
    recording_queue,
    run_folder,
    spawn_agent,
    wait_for,
)
from tests.faults.history import HistoryWriter, Record, read_history
from tests.faults.recorder import RecordingQueue

LEASE_MS = 800
DEFAULT_SIZE = 3
"""Stop cycles in the default run."""
SLOW_SIZE = 15
NAME = "paused"
COMMAND = "SCHEDULER_SLOW=1 .venv/bin/python -m pytest -m slow tests/faults/test_stopped_worker.py"


def open_effect(records: list[Record], ids: set[str]) -> tuple[str, str] | None:
    """A (job id, token) whose side effect the agent began and has not finished."""
    begun = {
        (r.job_id, r.token)
        for r in records
        if r.process == NAME and r.kind == "effect_start" and r.job_id in ids
    }
    ended = {(r.job_id, r.token) for r in records if r.process == NAME and r.kind == "effect_end"}
    pending = begun - ended
    return next(iter(pending)) if pending else None  # type: ignore[return-value]


def agent_completion(records: list[Record], token: str) -> Record | None:
    """The outcome of the agent's completion with ``token``, once written."""
    for r in records:
        if r.process == NAME and r.op == "complete" and r.token == token and r.kind != "invoke":
            return r
    return None


def take_until(taker: RecordingQueue, job_id: str, old_token: str, timeout_s: float) -> None:
    """Claim and complete one job at a time until the taker has leased ``job_id`` again."""
    got = [False]

    def step() -> bool:
        for job in taker.claim("taker", lease_ms=LEASE_MS * 10).jobs:
            taker.history.write("taker", "effect_start", "effect", job_id=job.id, token=job.token)
            taker.history.write("taker", "effect_end", "effect", job_id=job.id, token=job.token)
            taker.complete(job, job.payload)
            got[0] = got[0] or (job.id == job_id and job.token != old_token)
        return got[0]

    wait_for(step, timeout_s, f"another lease of {job_id}")


def run_cycle(
    folder: object, writer: HistoryWriter, taker: RecordingQueue, pid: int, cycle: int
) -> str:
    """One stop, take-over and resume; returns the status of the paused worker's completion."""
    ids = {f"c{cycle}-{k}" for k in range(3)}
    options = job_options(LEASE_MS)
    taker.enqueue_many([JobSpec(i, id=i, options=options) for i in sorted(ids)])
    found: list[tuple[str, str]] = []

    def agent_inside() -> bool:
        hit = open_effect(read_history(folder), ids)  # type: ignore[arg-type]
        found[:] = [hit] if hit else []
        return hit is not None

    wait_for(agent_inside, 20, "the agent inside a side effect")
    job_id, token = found[0]
    os.kill(pid, signal.SIGSTOP)
    writer.write("test", "fault", "stop", target=NAME, job_id=job_id, token=token)
    try:
        take_until(taker, job_id, token, LEASE_MS / 1000 + 10)
    finally:
        os.kill(pid, signal.SIGCONT)
        writer.write("test", "fault", "cont", target=NAME)
    outcome: list[Record] = []

    def answered() -> bool:
        hit = agent_completion(read_history(folder), token)  # type: ignore[arg-type]
        outcome[:] = [hit] if hit else []
        return hit is not None

    wait_for(answered, 10, "the paused worker's completion")
    return str(outcome[0].status or outcome[0].kind)


def scenario(size: int) -> Outcome:
    """``size`` stop cycles; the outcome's notes give the paused worker's completion statuses."""
    statuses = []
    with LocalRedis() as server, run_folder("stop") as folder:
        writer = HistoryWriter(folder, "test")
        client = client_for(server.url)
        taker = recording_queue(client, writer, "taker")
        agent = spawn_agent(
            server.url, folder, NAME, "--mode", "plain", "--lease-ms", str(LEASE_MS),
            "--effect-ms", "150",
        )  # fmt: skip
        try:
            for cycle in range(size):
                statuses.append(run_cycle(folder, writer, taker, agent.pid, cycle))
            wait_for(lambda: not taker.stats().counts[State.WAITING], 20, "the queue drained")
            wait_for(lambda: not taker.stats().counts[State.ACTIVE], 20, "the last leases ended")
        finally:
            end_process(agent)
        bound_ms = LEASE_MS + REAP_INTERVAL_S * 1000
        report = finish("worker paused (SIGSTOP) past its lease", folder, taker, bound_ms)
        client.close()
    return Outcome(report, COMMAND, notes=f"paused worker's completions: {statuses}")


def check_outcome(outcome: Outcome, size: int) -> None:
    """Every paused worker's completion was refused; the checker finds nothing wrong."""
    report = outcome.report
    assert report.problems() == [], report.problems()
    assert outcome.notes == f"paused worker's completions: {['lease_lost'] * size}"
    assert report.stale_refused >= size
    assert report.max_accepted == 1
    assert len(report.recovery_ms) == size, report.recoveries


def test_a_paused_worker_s_completion_is_refused() -> None:
    check_outcome(scenario(DEFAULT_SIZE), DEFAULT_SIZE)


@pytest.mark.slow
@pytest.mark.skipif(not SLOW, reason="the larger run: SCHEDULER_SLOW=1 pytest -m slow")
def test_a_paused_worker_s_completion_is_refused_many_times() -> None:
    check_outcome(scenario(SLOW_SIZE), SLOW_SIZE)
