"""A stream of good jobs with marked ones mixed in, run by worker processes and a thread worker:
the shared body of the poison payload and unencodable result scenarios.

The producer enqueues the stream in order, as fast as it can (so the workers, not the producer,
set the pace, and the report's rates measure them); each marked job is marked in the history (a
``fault`` record of the mark's op, with the text its error must contain) before it is enqueued.
Two agents (``python -m tests.faults.agent``) and a recorded thread worker in this process run
the stream, with the same payload size cap. The run ends once every job is finished.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from scheduler import State
from scheduler._local_redis import LocalRedis
from tests.faults.checker import Report, marks
from tests.faults.harness import (
    QUEUE,
    Outcome,
    claiming,
    client_for,
    end_process,
    finish,
    job_options,
    run_folder,
    spawn_agent,
    thread_workers,
    wait_for,
)
from tests.faults.history import HistoryWriter, read_history
from tests.faults.recorder import RecordingQueue

LEASE_MS = 1000
AGENTS = ("agent-1", "agent-2")
EFFECT_S = 0.02
"""Each good job's side effect."""


@dataclass(frozen=True, slots=True)
class StreamJob:
    """One job of the stream: its payload, encoded by the client, or ``raw`` bytes written
    past the client's checks; a marked job also has its mark (op) and the text its error must
    contain."""

    id: str
    payload: Any = None
    raw: bytes | None = None
    mark: str | None = None
    detail: str | None = None


@dataclass
class StreamRun:
    """What a stream run gives: the report, how many agents were up at the end, and which
    participant failed how many of the marked jobs."""

    report: Report
    alive: int
    failed_by: dict[str, int]

    def notes(self) -> str:
        """The run in words (marked jobs, the rates, who failed them, the agents up)."""
        rates = self.report.rates
        pace = "n/a" if rates is None else f"{rates[0]:.0f}/s before, {rates[1]:.0f}/s after"
        marked = ", ".join(f"{n} {op}" for op, n in sorted(self.report.marked.items()))
        failed = ", ".join(f"{who} {n}" for who, n in sorted(self.failed_by.items()))
        return (
            f"{marked} jobs, failed by {failed}; the other jobs completed {pace}; "
            f"{self.alive} of {len(AGENTS)} agents up at the end"
        )


def produce(producer: RecordingQueue, stream: list[StreamJob]) -> None:
    """Enqueue the stream in order, each marked job marked first."""
    options = job_options(LEASE_MS)
    for job in stream:
        if job.mark is not None:
            producer.history.write("test", "fault", job.mark, job_id=job.id, detail=job.detail)
        if job.raw is None:
            producer.enqueue(job.payload, id=job.id, options=options)
        else:
            producer.enqueue_raw(job.raw, id=job.id, options=options)


def finished(queue: RecordingQueue, completed: int, dead: int) -> bool:
    """True once ``completed`` jobs completed and ``dead`` are dead."""
    counts = queue.stats(active_limit=0).counts
    return counts[State.COMPLETED] >= completed and counts[State.DEAD] >= dead


def failed_by(folder: Any) -> dict[str, int]:
    """How many marked jobs each participant failed (its ``fail`` answered)."""
    records = read_history(folder)
    marked = set(marks(records))
    return dict(
        Counter(
            r.process for r in records if r.kind == "ok" and r.op == "fail" and r.job_id in marked
        )
    )


def run_stream(name: str, stream: list[StreamJob], *, max_payload_bytes: int) -> StreamRun:
    """Run ``stream`` to its end (the marked jobs dead, the others completed); check it."""
    dead = sum(1 for job in stream if job.mark is not None)
    with LocalRedis() as server, run_folder("stream") as folder:
        writer = HistoryWriter(folder, "test")
        client = client_for(server.url)
        producer = RecordingQueue(client, QUEUE, history=writer, process="producer")
        worker = RecordingQueue(
            client, QUEUE, history=writer, process="worker", max_payload_bytes=max_payload_bytes
        )
        agents = [
            spawn_agent(
                server.url, folder, label, "--lease-ms", str(LEASE_MS),
                "--effect-ms", str(int(EFFECT_S * 1000)),
                "--max-payload-bytes", str(max_payload_bytes),
            )
            for label in AGENTS
        ]  # fmt: skip
        try:
            with thread_workers([worker], effect_s=EFFECT_S, concurrency=2, lease_ms=LEASE_MS):
                for label in AGENTS:
                    wait_for(lambda label=label: claiming(folder, label), 30, f"{label} up")  # type: ignore[misc]
                produce(producer, stream)
                wait_for(lambda: finished(worker, len(stream) - dead, dead), 60, "every job done")
            alive = sum(1 for agent in agents if agent.poll() is None)
        finally:
            for agent in agents:
                end_process(agent)
        report = finish(name, folder, worker, None)
        who = failed_by(folder)
        client.close()
    return StreamRun(report, alive, who)


def check_marked_stream(outcome: Outcome, mark: str) -> None:
    """What a run of :func:`run_stream` with jobs marked ``mark`` must show: nothing lost or
    unexpected, each marked job ended as its mark says (the checker's ``marked`` count), no job
    run twice, every worker process still up, and the good jobs completed after the first
    marked one at half their rate before it, at least (a figure from the history's times)."""
    report = outcome.report
    assert report.problems() == [], report.problems()
    assert report.marked == {mark: outcome.figures[mark]}
    assert report.max_accepted == 1 and report.duplicates == 0
    assert outcome.figures["alive"] == len(AGENTS), f"a worker process died on a {mark} job"
    assert report.rates is not None, f"too few completions on either side of the first {mark} job"
    before, after = report.rates
    assert after >= 0.5 * before, outcome.notes
