"""What every fault scenario needs: a server of its own, recorded participants (a producer, a
reaper, thread workers, worker processes), bounded waits, and the final reading of Redis that
the checker compares the history with.

A scenario is a function ``scenario(size) -> Outcome`` in its test module; the tests call it at
a small size, the ``slow`` tests and ``python -m tests.faults.report`` at larger ones. Each
scenario cleans up after itself (``with`` blocks and ``finally``), so it runs without pytest.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from scheduler import JobInfo, JobNotFound, JobOptions, Queue, RecordUnreadable, State
from scheduler.connection import TRANSIENT_ERRORS
from scheduler.worker import Worker
from tests.faults.checker import SETS, FinalJob, Report, check
from tests.faults.history import HistoryWriter, Record, parse_lines, read_history
from tests.faults.recorder import RecordingHandler, RecordingQueue
from tests.worker_threads import workers_in_threads

QUEUE = "faults"
REAP_INTERVAL_S = 1.0
"""How often the scenarios' reaper calls ``reap``: the published bound is lease + this."""
REPO_ROOT = Path(__file__).resolve().parents[2]
SLOW = os.environ.get("SCHEDULER_SLOW") == "1"
"""True when the larger runs are asked for (``SCHEDULER_SLOW=1 pytest -m slow``)."""


def job_options(lease_ms: int) -> JobOptions:
    """Options of every fault job: ``lease_ms``, attempts enough for every fault, no backoff."""
    return JobOptions(lease_ms=lease_ms, max_attempts=50, backoff_ms=0, jitter=0.0)


@dataclass
class Outcome:
    """A scenario's report and how to reproduce it."""

    report: Report
    command: str
    notes: str = ""
    figures: dict[str, int] = field(default_factory=dict)
    """Counts of the fault's own (cuts made, restarts, ...) for the test to check."""


def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``check`` every 20 ms; raise AssertionError at the deadline."""
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    while not check():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        pause.wait(0.02)


@contextmanager
def run_folder(name: str) -> Iterator[Path]:
    """A temporary folder for one run's history files (kept if ``SCHEDULER_FAULT_KEEP`` is
    set, for a look afterwards)."""
    folder = Path(tempfile.mkdtemp(prefix=f"scheduler-fault-{name}-"))
    try:
        yield folder
    finally:
        if not os.environ.get("SCHEDULER_FAULT_KEEP"):
            for path in folder.glob("*"):
                path.unlink()
            folder.rmdir()


def client_for(url: str, **kwargs: Any) -> redis.Redis:
    """A client with short timeouts, so a lost reply shows up in a fraction of a second."""
    settings: dict[str, Any] = {"socket_timeout": 2.0, "socket_connect_timeout": 1.0}
    settings.update(kwargs)
    return redis.Redis.from_url(url, **settings)


def recording_queue(client: redis.Redis, writer: HistoryWriter, process: str) -> RecordingQueue:
    """The fault queue on ``client``, recorded as ``process``."""
    return RecordingQueue(client, QUEUE, history=writer, process=process)


SNAPSHOT_LUA = """#!lua flags=no-writes
local found = {redis.call("HKEYS", KEYS[1])}
for i = 2, #KEYS do found[i] = redis.call("ZRANGE", KEYS[i], 0, -1) end
return found
"""
"""The ids in the ``meta`` hash (KEYS[1]) and the members of each ZSET (the other KEYS), read at
one instant; read-only, so it runs on a full server too (a MULTI would be refused there)."""


def read_placement(queue: Queue) -> tuple[set[str], dict[str, tuple[str, ...]]]:
    """Every job id Redis holds a record of for the queue (the fields of its ``meta`` hash), and
    which of the sets (:data:`~tests.faults.checker.SETS`) hold each id that is in one."""
    keys = [queue.ops.keys.key(part) for part in ("meta", *SETS)]
    meta, *members = queue.client.eval(SNAPSHOT_LUA, len(keys), *keys)
    placement: dict[str, list[str]] = {}
    for part, ids in zip(SETS, members, strict=True):
        for job_id in ids:
            placement.setdefault(job_id.decode(), []).append(part)
    return {key.decode() for key in meta}, {k: tuple(v) for k, v in placement.items()}


def final_job(info: JobInfo) -> FinalJob:
    """What the checker needs of a job's end."""
    return FinalJob(
        info.state.value,
        info.attempt,
        info.max_attempts,
        info.token,
        error=info.error,
        outcome=info.outcome.value,
    )


def unreadable_job(exc: RecordUnreadable) -> FinalJob:
    """A job whose record the scripts cannot read: ``quarantined`` or ``unreadable``."""
    record = exc.record
    state = "quarantined" if record.quarantined_ms is not None else "unreadable"
    return FinalJob(state, 0, 0, "", unreadable=record.reason.value, record=record.record)


def read_final(
    queue: Queue, ids: set[str]
) -> tuple[dict[str, FinalJob | None], set[str], dict[str, tuple[str, ...]]]:
    """Each id's state in Redis, every job id Redis holds for the queue, and which sets hold
    each (:func:`read_placement`)."""
    stored, placement = read_placement(queue)
    final: dict[str, FinalJob | None] = {}
    for job_id in ids | stored | set(placement):
        try:
            final[job_id] = final_job(queue.inspect(job_id))
        except JobNotFound:
            final[job_id] = None
        except RecordUnreadable as exc:
            final[job_id] = unreadable_job(exc)
    return final, stored, placement


def finish(name: str, folder: Path, queue: Queue, bound_ms: float | None) -> Report:
    """Read the history and Redis, and check them."""
    records = read_history(folder)
    asked = {r.job_id for r in records if r.job_id}
    final, stored, placement = read_final(queue, asked)
    return check(name, records, final, stored, bound_ms, placement)


def completed_count(queue: Queue) -> int:
    """How many jobs of the queue are completed (0 while Redis does not answer)."""
    try:
        return queue.stats(active_limit=0).counts[State.COMPLETED]
    except TRANSIENT_ERRORS:
        return 0


class Producer:
    """A thread enqueuing ``<prefix>-<n>`` for n < ``count`` (or until :meth:`stop`), one every
    ``interval_s``, repeating an enqueue whose outcome was unknown with the same id."""

    def __init__(
        self,
        queue: RecordingQueue,
        count: int,
        options: JobOptions,
        *,
        prefix: str = "job",
        interval_s: float = 0.005,
        keep_going: Callable[[], bool] = lambda: False,
    ) -> None:
        self.queue, self.count, self.options = queue, count, options
        self.prefix, self.interval_s, self.keep_going = prefix, interval_s, keep_going
        self.enqueued = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="producer", daemon=True)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set() and (n < self.count or self.keep_going()):
            try:
                self.queue.enqueue(n, id=f"{self.prefix}-{n}", options=self.options)
            except TRANSIENT_ERRORS:
                self._stop.wait(0.05)
                continue  # same id again: safe
            n += 1
            self.enqueued = n
            self._stop.wait(self.interval_s)

    def done(self) -> bool:
        """True once the thread has ended."""
        return not self._thread.is_alive()

    def __enter__(self) -> Producer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


class Reaper:
    """A thread calling ``reap`` every :data:`REAP_INTERVAL_S` (errors are recorded, ignored)."""

    def __init__(self, queue: RecordingQueue) -> None:
        self.queue = queue
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reaper", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(REAP_INTERVAL_S):
            with contextlib.suppress(redis.RedisError):
                self.queue.reap()

    def __enter__(self) -> Reaper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


@contextmanager
def thread_workers(
    queues: list[RecordingQueue], *, effect_s: float, **options: Any
) -> Iterator[list[Worker]]:
    """One recorded thread :class:`Worker` per queue given (each named by its queue's
    ``process``); stopped and joined (bounded) on leaving the block."""
    workers = [
        Worker(q, RecordingHandler(q.history, q.process, effect_s), worker_id=q.process,
               grace_s=5, max_idle_s=1, **options)
        for q in queues
    ]  # fmt: skip
    with workers_in_threads(workers) as running:
        yield running


def load_with_faults(
    client: redis.Redis,
    writer: HistoryWriter,
    size: int,
    *,
    lease_ms: int,
    interval_s: float,
    effect_s: float,
    faults: int,
    inject: Callable[[], None],
) -> RecordingQueue:
    """A recorded steady load: a producer enqueues ``size`` jobs every ``interval_s``, two
    thread workers run them and a reaper runs beside them; ``inject()`` is called ``faults``
    times, at even steps of the progress. Returns once every job is done (one of the workers'
    queues, to read the outcome with)."""
    workers = [recording_queue(client, writer, f"worker-{n}") for n in (1, 2)]
    with (
        Reaper(recording_queue(client, writer, "reaper")),
        Producer(
            recording_queue(client, writer, "producer"),
            size,
            job_options(lease_ms),
            interval_s=interval_s,
        ) as producer,
        thread_workers(workers, effect_s=effect_s, concurrency=4, lease_ms=lease_ms),
    ):
        for n in range(faults):
            step = (n + 1) * size // (faults + 1)
            wait_for(lambda step=step: completed_count(workers[0]) >= step, 60, f"{step} done")  # type: ignore[misc]
            inject()
        wait_for(producer.done, 60, "the producer")
        wait_for(lambda: completed_count(workers[0]) >= size, 60, "every job done")
    return workers[0]


def spawn_agent(url: str, folder: Path, name: str, *args: str) -> subprocess.Popen[bytes]:
    """Start ``python -m tests.faults.agent`` (a recorded worker process) as ``name``."""
    command = [
        sys.executable, "-m", "tests.faults.agent",
        "--url", url, "--queue", QUEUE, "--history", str(folder), "--name", name, *args,
    ]  # fmt: skip
    return subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def agent_records(folder: Path, name: str) -> list[Record]:
    """The records agent ``name`` wrote so far (its own file only: cheap to poll)."""
    records: list[Record] = []
    for path in sorted(folder.glob(f"{name}-*.jsonl")):
        records += parse_lines(path.read_text().splitlines())
    return records


def claiming(folder: Path, name: str) -> bool:
    """True once agent ``name`` has asked for work (its worker is up)."""
    return any(r.kind == "invoke" and r.op == "claim" for r in agent_records(folder, name))


def end_process(process: subprocess.Popen[bytes]) -> None:
    """Stop a process this run started: resume it if stopped, SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGCONT)
        process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
