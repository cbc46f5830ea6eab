"""Worker processes killed with SIGKILL at every point of a job's life, and at random moments:
no job is lost, none appears that was not asked for, each has at most one accepted completion,
none is dead-lettered early, and every job a dead worker held is offered again within the
published bound (lease + reaper interval).

Each agent (``python -m tests.faults.agent``, the package's thread ``Worker``) kills itself the
N-th time it reaches its point: before the side effect, during it, after it, between the side
effect and the acknowledgement (``before_ack``) and right after the acknowledgement. Other agents
are killed from outside at a random moment while they work. A recorded thread worker in the
test's process and a reaper stay up throughout; a producer enqueues a steady stream until every
planned kill has happened and at least ``size`` jobs were enqueued.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from scheduler._local_redis import LocalRedis
from tests.faults.agent import KILL_POINTS
from tests.faults.harness import (
    REAP_INTERVAL_S,
    SLOW,
    Outcome,
    Producer,
    Reaper,
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

LEASE_MS = 1000
DEFAULT_SIZE = 150
"""Jobs at least, in the default run (one agent per kill point, one random kill)."""
SLOW_SIZE = 1500
COMMAND = "SCHEDULER_SLOW=1 .venv/bin/python -m pytest -m slow tests/faults/test_killed_worker.py"


def has_run(folder: Path, name: str) -> bool:
    """True once agent ``name`` has begun a side effect."""
    return any(r.process == name and r.kind == "effect_start" for r in read_history(folder))


def random_kills(
    url: str,
    folder: Path,
    writer: HistoryWriter,
    rounds: int,
    seed: int,
    started: list[subprocess.Popen[bytes]],
) -> None:
    """Start an agent, kill it with SIGKILL a random moment after it began working; ``rounds``
    times in a row. Each process is added to ``started`` as soon as it exists."""
    rng = random.Random(seed)
    pause = threading.Event()
    for n in range(rounds):
        name = f"random-{n}"
        agent = spawn_agent(url, folder, name, "--lease-ms", str(LEASE_MS))
        started.append(agent)
        wait_for(lambda name=name: has_run(folder, name), 30, f"{name} at work")  # type: ignore[misc]
        pause.wait(rng.uniform(0.0, 0.3))
        writer.write("test", "fault", "kill", target=name, status="random")
        os.kill(agent.pid, signal.SIGKILL)
        agent.wait(10)


def scenario(size: int, seed: int = 7) -> Outcome:
    """Kill agents at every point and at random; ``size`` jobs at least."""
    rng = random.Random(seed)
    rounds = max(1, size // 150)
    plans = [(point, rng.randint(1, 3)) for point in KILL_POINTS for _ in range(rounds)]
    with LocalRedis() as server, run_folder("kill") as folder:
        writer = HistoryWriter(folder, "test")
        client = client_for(server.url)
        agents = [
            spawn_agent(
                server.url, folder, f"{point}-{n}", "--lease-ms", str(LEASE_MS),
                "--kill-at", point, "--kill-after", str(after),
            )
            for n, (point, after) in enumerate(plans)
        ]  # fmt: skip
        every = list(agents)
        survivor = recording_queue(client, writer, "survivor")
        try:
            with (
                Reaper(recording_queue(client, writer, "reaper")),
                Producer(
                    recording_queue(client, writer, "producer"),
                    size,
                    job_options(LEASE_MS),
                    interval_s=0.01,
                    keep_going=lambda: any(a.poll() is None for a in agents),
                ) as producer,
                thread_workers([survivor], effect_s=0.02, concurrency=4, lease_ms=LEASE_MS),
            ):
                random_kills(server.url, folder, writer, rounds, seed, every)
                wait_for(lambda: all(a.poll() is not None for a in agents), 60, "planned kills")
                wait_for(producer.done, 30, "the producer")
                wait_for(
                    lambda: completed_count(survivor) >= producer.enqueued, 60, "every job done"
                )
        finally:
            for agent in every:
                end_process(agent)
        bound_ms = LEASE_MS + REAP_INTERVAL_S * 1000
        report = finish("worker killed (SIGKILL) at every point", folder, survivor, bound_ms)
        client.close()
    return Outcome(report, COMMAND, notes=f"{len(plans) + rounds} kills")


def check_outcome(outcome: Outcome, size: int) -> None:
    """Every planned kill happened; nothing lost or unexpected, one accepted completion per
    job, every job a dead worker held offered again in time."""
    report = outcome.report
    rounds = max(1, size // 150)
    assert report.faults == (len(KILL_POINTS) + 1) * rounds, "each agent died at its point"
    assert report.problems() == [], report.problems()
    assert report.max_accepted == 1
    assert report.recovery_ms, "the killed workers held leases"


def test_workers_killed_at_every_point_lose_nothing() -> None:
    check_outcome(scenario(DEFAULT_SIZE), DEFAULT_SIZE)


@pytest.mark.slow
@pytest.mark.skipif(not SLOW, reason="the larger run: SCHEDULER_SLOW=1 pytest -m slow")
def test_workers_killed_at_every_point_lose_nothing_at_scale() -> None:
    check_outcome(scenario(SLOW_SIZE), SLOW_SIZE)
