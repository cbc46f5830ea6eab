"""The demo: the seed scenario (a manager, two workers, a monitor) and a supervised bulk run.

``run_seed_scenario`` is the scenario the project started from: a manager creates tasks A, B
and C; two workers in threads take them; the monitor shows which worker runs which task; all
three complete exactly once. ``python -m scheduler demo`` runs it, then :func:`run_bulk`: a few
thousand short jobs worked by worker processes under a :class:`~scheduler.supervisor.Supervisor`,
one of which is killed with SIGKILL on the way (the supervisor restarts it, and its jobs come
back when their short leases expire), with a progress bar and a summary that checks every job
completed exactly once. It runs on a throwaway local Redis unless a URL is given.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

import redis

from ._keys import KEY_PARTS, QueueKeys
from ._models import Job, JobSpec, QueueStats
from ._status import State
from .client import Queue
from .supervisor import Supervisor
from .worker import JobContext, Worker

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


BULK_QUEUE = "bulk"
BULK_LEASE_MS = 2000
"""The bulk workers' lease: short, so the jobs of a killed worker come back fast."""
BULK_CONCURRENCY = 4
"""Jobs at once per bulk worker process."""
BULK_WAIT_S = 60.0
"""How long the bulk run may take before the demo gives up."""
KILL_AT = 0.4
"""The share of jobs done when the demo kills a worker process."""
REFRESH_S = 0.1
"""How often the progress bar is redrawn on a terminal."""
BAR_WIDTH = 30


def pause_briefly(job: Job, context: JobContext) -> None:
    """A bulk job's work: about a millisecond."""
    context.cancelled.wait(0.001)


class _StopFlag:
    """Set by the SIGTERM handler (a plain attribute: safe to set from a handler)."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: Any = None) -> None:
        self.requested = True


def run_demo_worker(url: str, queue_name: str = BULK_QUEUE) -> None:
    """A bulk worker process: a thread :class:`Worker` on ``queue_name`` at ``url`` with short
    leases, until SIGTERM (SIGINT is left to the demo's main process, which stops this one)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop = _StopFlag()
    signal.signal(signal.SIGTERM, stop)
    logging.getLogger("scheduler").setLevel(logging.ERROR)  # server advice is for production
    client = redis.Redis.from_url(url)
    worker = Worker(
        Queue(client, queue_name, prefix=DEMO_PREFIX),
        pause_briefly,
        concurrency=BULK_CONCURRENCY,
        lease_ms=BULK_LEASE_MS,
        grace_s=1.0,
        max_idle_s=0.5,
    )
    thread = threading.Thread(target=worker.run, name="demo-worker")
    thread.start()
    while thread.is_alive():  # Worker.stop talks to Redis: called here, not in the handler
        if stop.requested:
            worker.stop()
        thread.join(0.05)
    client.close()


@dataclass
class BulkReport:
    """What the bulk run saw, read from the queue at the end."""

    jobs: int
    completed: int
    dead: int
    recovered: int
    elapsed_s: float
    killed_pid: int | None
    restarts: int

    @property
    def throughput(self) -> float:
        """Completed jobs per second over the run."""
        return self.completed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def exactly_once(self) -> bool:
        """Every job completed (a job's completion is recorded once), none dead."""
        return self.completed == self.jobs and self.dead == 0


class Progress:
    """A one-line progress bar on a terminal (redrawn with ``\\r`` about every
    :data:`REFRESH_S`); elsewhere a line every 10 %."""

    def __init__(self, total: int, out: TextIO) -> None:
        self.total = total
        self.out = out
        self.tty = out.isatty()
        self.drawn_at = 0.0
        self.tenths_shown = 0
        self.on_bar = False

    def update(self, done: int, *, force: bool = False) -> None:
        """Show ``done`` of ``total`` if it is time to."""
        if self.tty:
            now = time.monotonic()
            if force or now - self.drawn_at >= REFRESH_S:
                filled = BAR_WIDTH * done // self.total
                bar = "#" * filled + "." * (BAR_WIDTH - filled)
                self.out.write(f"\r  [{bar}] {done}/{self.total} {100 * done // self.total:3d}%")
                self.out.flush()
                self.drawn_at, self.on_bar = now, True
            return
        tenths = 10 * done // self.total
        if tenths > self.tenths_shown:
            self.tenths_shown = tenths
            print(f"  progress: {10 * tenths}% ({done}/{self.total})", file=self.out, flush=True)

    def note(self, text: str) -> None:
        """A message on a line of its own (below the bar)."""
        if self.on_bar:
            self.out.write("\n")
            self.on_bar = False
        print(f"  {text}", file=self.out, flush=True)

    def finish(self, done: int) -> None:
        """The last state of the bar, and end its line."""
        self.update(done, force=True)
        if self.on_bar:
            self.out.write("\n")
            self.on_bar = False
        self.out.flush()


class _BulkRun:
    """The bulk run's main loop: watch progress, kill one worker process, let it restart."""

    def __init__(self, client: redis.Redis, supervisor: Supervisor, jobs: int, out: TextIO):
        self.client = client
        self.supervisor = supervisor
        self.jobs = jobs
        self.progress = Progress(jobs, out)
        self.completed_key = QueueKeys(DEMO_PREFIX, BULK_QUEUE).key("completed")
        self.killed_pid: int | None = None
        self.restart_shown = False
        self.pace = threading.Event()  # never set: waiting on it paces the loop

    def watch(self) -> None:
        """Poll until every job is completed; raises TimeoutError after :data:`BULK_WAIT_S`."""
        deadline = time.monotonic() + BULK_WAIT_S
        while (done := int(self.client.zcard(self.completed_key))) < self.jobs:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {done} of {self.jobs} jobs completed in time")
            if self.supervisor.poll() == 0:
                raise RuntimeError("every worker process has ended")
            self.progress.update(done)
            self._kill_one(done)
            self._show_restart()
            self.pace.wait(0.01)
        self.progress.finish(done)

    def _kill_one(self, done: int) -> None:
        pids = self.supervisor.pids
        if self.killed_pid is not None or done < self.jobs * KILL_AT or not pids:
            return
        self.killed_pid = pids[0]
        os.kill(self.killed_pid, signal.SIGKILL)
        self.progress.note(
            f"killed worker process {self.killed_pid} (SIGKILL) at {done}/{self.jobs}: the "
            f"supervisor restarts it; its jobs come back when their {BULK_LEASE_MS / 1000:.0f} s "
            "leases expire"
        )

    def _show_restart(self) -> None:
        if self.restart_shown or self.supervisor.restarts == 0:
            return
        self.restart_shown = True
        self.progress.note(f"the supervisor restarted it; worker processes: {self.supervisor.pids}")


def run_bulk(
    url: str, jobs: int = 3000, processes: int = 3, out: TextIO | None = None
) -> BulkReport:
    """Enqueue ``jobs`` short jobs, work them with ``processes`` supervised worker processes,
    kill one of them on the way, and report what the queue shows at the end (see the module).
    Every process it starts is stopped before it returns, also on an error or Ctrl-C."""
    out = out or sys.stdout
    client = redis.Redis.from_url(url)
    try:
        queue = Queue(client, BULK_QUEUE, prefix=DEMO_PREFIX)
        clear_queue(client, BULK_QUEUE)
        ids = [f"job-{n}" for n in range(jobs)]
        for start in range(0, jobs, 500):
            batch = range(start, min(jobs, start + 500))
            queue.enqueue_many([JobSpec({"n": n}, id=ids[n]) for n in batch])
        supervisor = Supervisor(run_demo_worker, processes, args=(url,), grace_s=5.0)
        run = _BulkRun(client, supervisor, jobs, out)
        began = time.perf_counter()
        try:
            supervisor.start()
            run.watch()
        finally:
            _stop_quietly(supervisor)
        elapsed = time.perf_counter() - began
        stats = queue.stats()
        recovered = sum(1 for job_id in ids if queue.inspect(job_id).attempt > 1)
        report = BulkReport(
            jobs,
            stats.counts[State.COMPLETED],
            stats.counts[State.DEAD],
            recovered,
            elapsed,
            run.killed_pid,
            supervisor.restarts,
        )
        clear_queue(client, BULK_QUEUE)
        return report
    finally:
        client.close()


def _stop_quietly(supervisor: Supervisor) -> None:
    """Stop the worker processes; a Ctrl-C meanwhile kills them at once instead."""
    try:
        supervisor.stop()
    except KeyboardInterrupt:
        supervisor.kill()
        raise


def format_bulk_report(report: BulkReport) -> str:
    """The bulk run's summary."""
    once = "yes" if report.exactly_once() else "NO"
    return "\n".join(
        [
            "\nsummary:",
            f"  jobs done: {report.completed} of {report.jobs}",
            f"  jobs recovered from the killed worker (completed on a later attempt): "
            f"{report.recovered}",
            f"  worker processes restarted: {report.restarts}",
            f"  throughput: {report.throughput:,.0f} jobs/s ({report.elapsed_s:.1f} s, including "
            "the processes' start and the wait for the killed worker's leases)",
            f"  every job completed exactly once: {once} "
            f"(completed {report.completed} == jobs {report.jobs}, dead {report.dead})",
        ]
    )
