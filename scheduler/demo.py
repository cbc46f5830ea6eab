"""The demo: the seed scenario (a manager, two workers, a monitor) and a quick bulk run.

``run_seed_scenario`` is the scenario the project started from: a manager creates tasks A, B
and C; two workers in threads take them; the monitor shows which worker runs which task; all
three complete exactly once. ``python -m scheduler demo`` runs it, then drains a few thousand
jobs with two threads, on a throwaway local Redis unless a URL is given.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import redis

from ._keys import KEY_PARTS, QueueKeys
from ._models import JobSpec, QueueStats
from ._status import State
from .client import Queue

DEMO_PREFIX = "scheduler-demo"
TASKS = ("A", "B", "C")
WAIT_S = 10.0
"""How long any step of the demo may wait for another thread before it gives up."""


@dataclass(frozen=True)
class MonitorRow:
    """One line of the monitor: a task, the worker running it, its attempt and lease left."""

    task: str
    worker: str
    attempt: int
    lease_left_s: float


@dataclass
class SeedReport:
    """What the seed scenario saw: the monitor's snapshots, who completed what, and how many
    completions of each task Redis accepted (exactly one each when all is well)."""

    snapshots: list[list[MonitorRow]] = field(default_factory=list)
    completed_by: dict[str, str] = field(default_factory=dict)
    accepted: Counter[str] = field(default_factory=Counter)
    final_states: dict[str, State] = field(default_factory=dict)
    final_attempts: dict[str, int] = field(default_factory=dict)

    def completed_exactly_once(self) -> list[str]:
        """The tasks with one accepted completion, completed in the end, on their first attempt."""
        return [
            task
            for task in TASKS
            if self.accepted[task] == 1
            and self.final_states.get(task) is State.COMPLETED
            and self.final_attempts.get(task) == 1
        ]


def monitor_rows(stats: QueueStats) -> list[MonitorRow]:
    """The active jobs of a stats snapshot as monitor rows, by task."""
    rows = [
        MonitorRow(a.id, a.worker, a.attempt, round((a.deadline_ms - stats.now_ms) / 1000, 1))
        for a in stats.active
    ]
    return sorted(rows, key=lambda row: row.task)


class _SeedRun:
    """The threads of one seed scenario and what they share."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.report = SeedReport()
        self.shown = {task: threading.Event() for task in TASKS}
        self.lock = threading.Lock()
        self.errors: list[BaseException] = []
        self.pace = threading.Event()  # never set: waiting on it paces a loop

    def worker(self, name: str) -> None:
        """Claim one task at a time, hold it until the monitor has shown it, complete it."""
        deadline = time.monotonic() + WAIT_S
        try:
            while len(self.report.completed_by) < len(TASKS) and time.monotonic() < deadline:
                jobs = self.queue.claim(name).jobs
                if not jobs:
                    self.pace.wait(0.01)  # nothing to claim yet
                    continue
                job = jobs[0]
                if not self.shown[job.id].wait(WAIT_S):
                    raise TimeoutError(f"the monitor never showed task {job.id}")
                accepted = self.queue.complete(job, f"{job.payload['task']} done by {name}")
                with self.lock:
                    self.report.accepted[job.id] += int(accepted)
                    self.report.completed_by[job.id] = name
        except BaseException as exc:  # surfaced by run_seed_scenario
            self.errors.append(exc)

    def monitor(self) -> None:
        """Snapshot the queue when both workers hold a task (or the last task is held)."""
        deadline = time.monotonic() + WAIT_S
        while not all(event.is_set() for event in self.shown.values()):
            if time.monotonic() > deadline:
                self.errors.append(TimeoutError("the workers never took every task"))
                return
            stats = self.queue.stats()
            rows = [row for row in monitor_rows(stats) if not self.shown[row.task].is_set()]
            nothing_left = stats.counts[State.WAITING] == 0
            if len(rows) == 2 or (rows and nothing_left):
                self.report.snapshots.append(rows)
                for row in rows:
                    self.shown[row.task].set()
            else:
                self.pace.wait(0.005)  # between snapshots


def run_seed_scenario(client: redis.Redis, queue_name: str = "seed") -> SeedReport:
    """Run the seed scenario on ``client`` and return what happened (see the module doc)."""
    queue = Queue(client, queue_name, prefix=DEMO_PREFIX)
    clear_queue(client, queue_name)
    for task in TASKS:
        queue.enqueue({"task": task}, id=task)
    run = _SeedRun(queue)
    threads = [
        threading.Thread(target=run.worker, args=(f"worker-{n}",), daemon=True) for n in (1, 2)
    ]
    threads.append(threading.Thread(target=run.monitor, daemon=True))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S * 2)
    if run.errors:
        raise run.errors[0]
    if any(thread.is_alive() for thread in threads):
        raise TimeoutError("a worker or the monitor did not finish in time")
    final = {task: queue.inspect(task) for task in TASKS}
    run.report.final_states = {task: info.state for task, info in final.items()}
    run.report.final_attempts = {task: info.attempt for task, info in final.items()}
    return run.report


def format_seed_report(report: SeedReport) -> str:
    """The monitor's snapshots (task, worker, attempt, lease left) and the scenario's summary."""
    lines: list[str] = []
    for number, rows in enumerate(report.snapshots, 1):
        lines.append(f"\nmonitor, snapshot {number}:")
        lines.append(f"  {'task':<6}{'worker':<12}{'attempt':>8}{'lease left':>12}")
        for row in rows:
            lines.append(
                f"  {row.task:<6}{row.worker:<12}{row.attempt:>8}{row.lease_left_s:>11.1f}s"
            )
    lines.append("\nresults:")
    for task, worker in sorted(report.completed_by.items()):
        state = report.final_states[task].value
        lines.append(
            f"  task {task}: {state} by {worker}, attempt {report.final_attempts[task]}, "
            f"accepted completions: {report.accepted[task]}"
        )
    once = len(report.completed_exactly_once())
    lines.append(f"\n{once} of {len(TASKS)} tasks completed exactly once")
    return "\n".join(lines)


def clear_queue(client: redis.Redis, queue_name: str) -> None:
    """Delete every key of a demo queue (they all live under the demo prefix)."""
    keys = QueueKeys(DEMO_PREFIX, queue_name)
    client.delete(*keys.keys(KEY_PARTS))


def bulk_run(client: redis.Redis, jobs: int = 2000, threads: int = 2) -> float:
    """Enqueue ``jobs`` jobs in batches, drain them with ``threads`` threads (claim 100 and
    complete_many), and return the drain's jobs per second."""
    queue = Queue(client, "bulk", prefix=DEMO_PREFIX)
    clear_queue(client, "bulk")
    for start in range(0, jobs, 500):
        queue.enqueue_many([JobSpec({"n": n}) for n in range(start, min(jobs, start + 500))])
    done = Counter[str]()

    def drain(name: str) -> None:
        while claimed := queue.claim(name, count=100).jobs:
            statuses = queue.complete_many([(job, None) for job in claimed])
            done[name] += sum(1 for s in statuses if s.status == "ok")

    workers = [
        threading.Thread(target=drain, args=(f"bulk-{n}",), daemon=True) for n in range(threads)
    ]
    began = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    elapsed = time.perf_counter() - began
    if sum(done.values()) != jobs:
        raise RuntimeError(f"drained {sum(done.values())} of {jobs} jobs")
    clear_queue(client, "bulk")
    return jobs / elapsed
