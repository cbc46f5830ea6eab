"""What the thread worker and the asyncio worker share: their settings, the job context, and
every decision that does not depend on how they wait (pure; the workers do the I/O).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._models import Claimed, Failed, ItemStatus, Job
from ._status import Status

logger = logging.getLogger("scheduler.worker")

TICK_S = 0.02
"""How often a heartbeat loop looks at time limits and whether a heartbeat is due."""
ACK_BATCH = 1000
"""The most results acknowledged in one call."""


class CancelFlag:
    """A flag a worker sets when a job must stop: ``is_set()``, ``set()`` and ``wait(timeout)``,
    as on :class:`threading.Event`, at a fraction of the cost of making one per job (the event
    behind :meth:`wait` is made only when a handler first waits)."""

    __slots__ = ("_event", "_flag")

    _make_lock = threading.Lock()

    def __init__(self) -> None:
        self._flag = False
        self._event: threading.Event | None = None

    def is_set(self) -> bool:
        """True once the job must stop."""
        return self._flag

    def set(self) -> None:
        """Tell the job to stop."""
        self._flag = True
        event = self._event
        if event is not None:
            event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the flag is set or ``timeout`` seconds pass; True if it is set."""
        if self._flag:
            return True
        with CancelFlag._make_lock:
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        if self._flag:  # set() ran before the event existed
            event.set()
        return event.wait(timeout)


@dataclass
class JobContext:
    """What a handler gets besides the job: a cancel flag to look at in long work.

    ``cancelled`` is set when the job's lease was lost (another worker may be running it now),
    when its time limit passed, or when the worker is stopping past its grace period. The
    job's result is discarded once it is set.
    """

    job: Job
    worker_id: str
    lease_ms: int
    cancelled: CancelFlag = field(default_factory=CancelFlag)
    started: float = field(default_factory=time.monotonic)
    """When the handler started (until then: when the job was claimed)."""
    begun: bool = False
    """True once the handler started (a prefetched job waits for a free thread first)."""
    finished: bool = False
    """True once the handler returned or raised (its acknowledgement may still be on its way)."""


Finished = tuple[JobContext, Any, BaseException | None]
"""A run that ended: its context, its result, and its error (None when it succeeded)."""


class NonRetryable(Exception):
    """Raise it (or a subclass) from a handler to send the job to the dead letters at once."""


def default_worker_id() -> str:
    """``host-pid-random``: unique per worker, readable in the monitor."""
    host = "".join(c if c.isalnum() or c in "_.-" else "-" for c in socket.gethostname())[:40]
    return f"{host or 'host'}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker runs (see :class:`scheduler.worker.Worker` for each field)."""

    concurrency: int
    worker_id: str
    lease_ms: int | None
    time_limit_ms: int | None
    grace_s: float
    max_idle_s: float
    prefetch: int = 0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.prefetch < 0:
            raise ValueError("prefetch must be 0 or more")


def sort_finished(
    batch: Sequence[Finished],
) -> tuple[list[tuple[JobContext, Any]], list[tuple[JobContext, BaseException]]]:
    """Split finished runs into results to complete and errors to fail; a run whose lease is
    no longer ours (cancelled) is neither: its result is discarded, and that is logged."""
    successes, failures = [], []
    for context, result, error in batch:
        if not context.begun:
            continue  # handed back before it ran: nothing to report
        if context.cancelled.is_set():
            log_job(logging.INFO, context.job, context.worker_id, "result discarded: not our lease")
        elif error is None:
            successes.append((context, result))
        else:
            failures.append((context, error))
    return successes, failures


def describe_failure(error: BaseException) -> tuple[str, bool]:
    """The error text to keep, and whether the failure may be retried."""
    return f"{type(error).__name__}: {error}", not isinstance(error, NonRetryable)


def log_job(level: int, job: Job, worker_id: str, message: str, *args: object) -> None:
    """One log record about a job. Its id, queue, attempt and worker are in the text and, for
    structured handlers, in the record's attributes ``job_id``, ``queue``, ``attempt``,
    ``worker``."""
    extra = {"job_id": job.id, "queue": job.queue, "attempt": job.attempt, "worker": worker_id}
    logger.log(
        level,
        "job %s on queue %s (attempt %d, worker %s): " + message,
        job.id, job.queue, job.attempt, worker_id, *args,
        extra=extra,
    )  # fmt: skip


def log_refused(jobs: Sequence[Job], statuses: Sequence[ItemStatus] | None, worker: str) -> None:
    """Log each completion Redis refused (its lease was lost meanwhile)."""
    for job, item in zip(jobs, statuses or [], strict=False):
        if item.status not in (Status.OK, Status.DUPLICATE):
            log_job(logging.WARNING, job, worker, "completion refused: %s", item.status.value)


def log_lost(context: JobContext) -> None:
    """Log a lease found lost: the job is being cancelled on this worker."""
    log_job(logging.WARNING, context.job, context.worker_id, "lease lost; job cancelled")


def log_failed(context: JobContext, failed: Failed | None, text: str, lease_lost: bool) -> None:
    """Log the outcome of failing a job's attempt."""
    if lease_lost:
        log_job(logging.WARNING, context.job, context.worker_id, "failure not recorded, lease lost")
    elif failed is not None:
        log_job(
            logging.INFO,
            context.job,
            context.worker_id,
            "failed (%s): %s",
            failed.outcome.value,
            text,
        )


def idle_wait_s(claimed: Claimed, max_idle_s: float) -> float:
    """How long an idle worker may block for the wake signal: never past the next delayed job
    or lease deadline the empty claim named, nor past ``max_idle_s``."""
    if claimed.next_ms is None:
        return max_idle_s
    return min(max_idle_s, max(0.0, (claimed.next_ms - claimed.now_ms) / 1000))


def heartbeat_interval_s(contexts: Sequence[JobContext]) -> float:
    """A third of the shortest lease held, between 20 ms and 10 s."""
    return max(0.02, min(min(c.lease_ms for c in contexts) / 3000, 10.0))


def past_time_limit(contexts: Sequence[JobContext], limit_ms: int | None) -> list[JobContext]:
    """The runs that have been going for longer than ``limit_ms``."""
    if limit_ms is None:
        return []
    now = time.monotonic()
    return [
        c for c in contexts if c.begun and not c.finished and (now - c.started) * 1000 >= limit_ms
    ]


def retry_delays() -> Iterator[float]:
    """Pauses between repeats of a call after connection errors: 50 ms doubling to 2 s."""
    delay = 0.05
    while True:
        yield delay
        delay = min(delay * 2, 2.0)


WAIT_MARGIN_S = 2.0
"""How long past its own timeout a blocking pop's reply may take before the wait is given up."""


def blocking_connection_kwargs(
    kwargs: dict[str, Any], no_retry: Any, socket_timeout: float | None = None
) -> dict[str, Any]:
    """Connection settings for the blocking pop: no retries (a blocking command is never
    re-sent after a reconnect) and a socket timeout longer than any wait (``socket_timeout``:
    the longest wait plus :data:`WAIT_MARGIN_S`), so that a reply lost on a connection that
    stays open (half-open, after a NAT or firewall dropped its state) ends the wait instead of
    blocking the worker for good."""
    return {**kwargs, "retry": no_retry, "socket_timeout": socket_timeout}
