"""The thread-pool worker: runs a handler for each job of one queue, on N threads.

One loop design, four kinds of thread, each with one job:

* the **claimer** leases as many jobs as there is room for (one ``claim`` call): room for
  ``concurrency`` running jobs plus ``prefetch`` jobs leased ahead, waiting here for a free
  thread (their leases are heartbeated like the others). It claims again once a quarter of that
  room is free (or a thread is idle), so claims come in batches. When the queue is empty it waits
  on the queue's wake LIST with ``BLPOP`` on a connection of its own, never longer than until
  the next delayed job or lease deadline is due;
* the **runners** (``concurrency`` threads) take the leased jobs in claim order and run the
  handler;
* the **acker** sends finished jobs back in batches: one ``complete_many`` for all results at
  hand, one ``fail`` per failure (which decides retry or dead letters atomically);
* the **heartbeat** extends every lease the worker holds in one call, about every third of the
  lease, and sets the :class:`JobContext` cancel flag of each job whose lease the reply names
  as lost; that job's result is then discarded, and this is logged with the job id.

A per-job time limit sets the cancel flag and fails the job with a timeout error (which follows
the retry policy); a thread cannot be killed, so a handler should look at
:attr:`JobContext.cancelled` in long loops. On :meth:`Worker.stop` the claimer stops, running
jobs get ``grace_s`` to finish, and what is left is handed back with ``release`` so another worker
can take it at once; prefetched jobs that never started are handed back at once.

Every Redis call is repeated after a connection error, with backoff, and is safe to repeat
(claim ids, lease tokens); the blocking pop is never re-sent after a reconnect: the claimer goes
back to claiming first.
"""

from __future__ import annotations

import contextlib
import queue as queue_module
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import redis

from ._models import Claimed, Job
from ._ops import new_id
from ._server_checks import check_server
from ._status import Status
from ._validate import MAX_BATCH
from ._wake import WakeWaiter
from ._worker_core import (
    ACK_BATCH,
    TICK_S,
    Finished,
    JobContext,
    NonRetryable,
    WorkerSettings,
    default_worker_id,
    describe_failure,
    heartbeat_interval_s,
    idle_wait_s,
    log_failed,
    log_lost,
    log_refused,
    logger,
    past_time_limit,
    retry_delays,
    sort_finished,
)
from .client import Queue
from .connection import TRANSIENT_ERRORS
from .errors import LeaseLost
from .sharded import ShardedQueue, wake_keys

T = TypeVar("T")

Handler = Callable[[Job, JobContext], Any]
"""A job handler: its return value is the job's result; an exception fails the attempt."""

__all__ = ["Handler", "JobContext", "NonRetryable", "Worker", "default_worker_id"]


class Worker:
    """Runs ``handler`` for every job of ``queue`` on ``concurrency`` threads (see the module).

    Args:
        queue: the queue to work on (a :class:`~scheduler.sharded.ShardedQueue`: all its shards).
        handler: called as ``handler(job, context)`` on a pool thread.
        concurrency: how many jobs run at once (one thread each).
        prefetch: how many more jobs may be leased ahead of a free thread (default: as many as
            ``concurrency``; 0 leases only for idle threads). More prefetch means fewer, larger
            claims: faster for short jobs, but a prefetched job waits behind the running ones.
        worker_id: how the monitor names this worker (default: host, pid and a random suffix).
        lease_ms: lease per claim (default: each job's own).
        time_limit_ms: fail a job that runs longer than this (None: no limit).
        grace_s: on stop, how long running jobs may take before they are handed back.
        max_idle_s: the longest a blocking wait for work lasts before the claimer looks again.
    """

    def __init__(
        self,
        queue: Queue | ShardedQueue,
        handler: Handler,
        *,
        concurrency: int = 4,
        prefetch: int | None = None,
        worker_id: str | None = None,
        lease_ms: int | None = None,
        time_limit_ms: int | None = None,
        grace_s: float = 30.0,
        max_idle_s: float = 5.0,
    ) -> None:
        self.queue = queue
        self.handler = handler
        self.settings = WorkerSettings(
            concurrency,
            worker_id or default_worker_id(),
            lease_ms,
            time_limit_ms,
            grace_s,
            max_idle_s,
            concurrency if prefetch is None else prefetch,
        )
        self.worker_id = self.settings.worker_id
        self.grace_s = grace_s
        self._running: dict[str, JobContext] = {}  # by lease token: one entry per lease held
        self._latest: dict[str, JobContext] = {}  # by job id: the newest run of each job
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # notified when a handler returns
        self._capacity = self.settings.concurrency + self.settings.prefetch
        self._refill = max(1, self._capacity // 4)
        self._outstanding = 0  # leased jobs whose handler has not returned (queued or running)
        self._idle_runners = 0
        self._todo: queue_module.SimpleQueue[JobContext | None] = queue_module.SimpleQueue()
        self._finished: queue_module.SimpleQueue[Finished] = queue_module.SimpleQueue()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._pause = threading.Event()  # never set: waiting on it is an interruptible sleep
        # BLPOP on a connection of its own; no wait is longer than max_idle_s
        self._waiter = WakeWaiter(queue.client, wake_keys(queue), max_wait_s=max_idle_s)

    # -- public --------------------------------------------------------------------------------

    def run(self) -> None:
        """Work until :meth:`stop` is called; then finish or hand back every job and return."""
        logger.info("worker %s started on queue %s", self.worker_id, self.queue.name)
        with contextlib.suppress(redis.RedisError):
            check_server(self.queue.client)  # logs what to fix: eviction, persistence, version
        helpers = [
            threading.Thread(target=self._ack_loop, name="scheduler-acker", daemon=True),
            threading.Thread(target=self._heartbeat_loop, name="scheduler-heartbeat", daemon=True),
        ]
        runners = [
            threading.Thread(target=self._runner_loop, name=f"scheduler-job-{i}", daemon=True)
            for i in range(self.settings.concurrency)
        ]
        for thread in helpers + runners:
            thread.start()
        try:
            self._claim_loop()
            self._drain_on_stop()
        finally:
            # Jobs still running were handed back and flagged cancelled: do not wait for them.
            for _ in runners:
                self._todo.put(None)
            self._stopped.set()
        for thread in helpers:
            thread.join(10)
        self._waiter.close()
        logger.info("worker %s stopped", self.worker_id)

    def stop(self) -> None:
        """Stop claiming; running jobs get the grace period, then are handed back."""
        self._stopping.set()
        with self._room:
            self._room.notify_all()
        # Wake the claimer if it is blocked waiting for work: CLIENT UNBLOCK ends its BLPOP at
        # once (a token on the shared wake list could wake another worker instead).
        with contextlib.suppress(redis.RedisError):
            self._waiter.unblock()

    @property
    def running(self) -> int:
        """How many jobs are running now."""
        with self._lock:
            return len(self._running)

    # -- the claimer ---------------------------------------------------------------------------

    def _claim_loop(self) -> None:
        while not self._stopping.is_set():
            free = self._wait_for_room()
            if free == 0:
                continue
            claimed = self._claim(free)
            if claimed is None:
                continue
            if claimed.jobs:
                self._hand_out(claimed)
            else:
                self._wait_for_work(idle_wait_s(claimed, self.settings.max_idle_s))

    def _wait_for_room(self) -> int:
        """How many jobs to claim: once a quarter of the room is free, or a thread is idle."""
        with self._room:
            self._room.wait_for(self._claimable, timeout=0.5)
            return min(self._capacity - self._outstanding, MAX_BATCH) if self._claimable() else 0

    def _claimable(self) -> bool:
        free = self._capacity - self._outstanding
        return (
            self._stopping.is_set() or free >= self._refill or (free > 0 and self._idle_runners > 0)
        )

    def _hand_out(self, claimed: Claimed) -> None:
        contexts = [
            JobContext(job, self.worker_id, job.deadline_ms - claimed.now_ms)
            for job in claimed.jobs
        ]
        older = []
        with self._lock:
            self._outstanding += len(contexts)
            for context in contexts:
                job = context.job
                previous = self._latest.get(job.id)
                if previous is not None and previous.job.token != job.token:
                    older.append(previous)
                self._latest[job.id] = context
                self._running[job.token] = context
        for context in older:
            self._cancel_older_run(context)
        for context in contexts:
            self._todo.put(context)

    @staticmethod
    def _cancel_older_run(context: JobContext) -> None:
        """A job claimed again while an older run of it is still here (its lease expired and
        this worker's own claim reaped it): that older run's lease is lost."""
        if not context.cancelled.is_set():
            context.cancelled.set()
            log_lost(context)

    def _claim(self, count: int) -> Claimed | None:
        # One claim id for every retry of this claim: a repeat after a lost reply returns the
        # leases the first attempt made instead of leasing more jobs.
        claim_id = new_id()
        return self._retrying(
            lambda: self.queue.claim(
                self.worker_id, count=count, claim_id=claim_id, lease_ms=self.settings.lease_ms
            ),
            "claim",
        )

    def _wait_for_work(self, timeout: float) -> None:
        if timeout <= 0.001:
            return
        try:
            if not self._stopping.is_set():
                self._waiter.wait(timeout)  # never re-sent: on any error we claim again first
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            logger.warning(
                "worker %s: waiting for work failed (%s); claiming again", self.worker_id, exc
            )
            self._pause.wait(0.1)

    # -- the runners ---------------------------------------------------------------------------

    def _runner_loop(self) -> None:
        while True:
            with self._room:
                self._idle_runners += 1
                if self._idle_runners == 1:
                    self._room.notify_all()  # an idle thread: the claimer may claim at once
            context = self._todo.get()
            with self._lock:
                self._idle_runners -= 1
            if context is None:
                return
            self._run_one(context)

    def _run_one(self, context: JobContext) -> None:
        result: Any = None
        error: BaseException | None = None
        if not context.cancelled.is_set():  # a prefetched job may have lost its lease already
            context.started = time.monotonic()
            context.begun = True
            try:
                result = self.handler(context.job, context)
            except BaseException as exc:  # the job's failure, reported through fail()
                error = exc
        context.finished = True
        self._finished.put((context, result, error))
        with self._room:  # the thread is free now; the lease is kept until the ack
            self._outstanding -= 1
            if self._capacity - self._outstanding == self._refill:
                self._room.notify_all()

    # -- the acker -----------------------------------------------------------------------------

    def _ack_loop(self) -> None:
        while not (self._stopped.is_set() and self._finished.empty()):
            try:
                first = self._finished.get(timeout=0.2)
            except queue_module.Empty:
                continue
            batch = [first]
            while len(batch) < ACK_BATCH:
                try:
                    batch.append(self._finished.get_nowait())
                except queue_module.Empty:
                    break
            self._acknowledge(batch)

    def _acknowledge(self, batch: list[Finished]) -> None:
        successes, failures = sort_finished(batch)
        for context, error in failures:
            self._fail(context, error)
        if successes:
            pairs = [(context.job, result) for context, result in successes]
            statuses = self._retrying(lambda: self.queue.complete_many(pairs), "complete")
            log_refused([job for job, _ in pairs], statuses, self.worker_id)
        for context, _, _ in batch:
            self._finish(context)

    def _fail(self, context: JobContext, error: BaseException) -> None:
        job = context.job
        text, retryable = describe_failure(error)
        try:
            failed = self._retrying(lambda: self.queue.fail(job, text, retryable=retryable), "fail")
        except LeaseLost:
            log_failed(context, None, text, lease_lost=True)
            return
        log_failed(context, failed, text, lease_lost=False)

    def _finish(self, context: JobContext) -> None:
        job = context.job
        with self._lock:
            self._running.pop(job.token, None)
            if self._latest.get(job.id) is context:
                del self._latest[job.id]

    # -- the heartbeat -------------------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        """Every tick: enforce time limits; when a third of the shortest lease has passed since
        the last heartbeat, extend every lease held."""
        last_beat = time.monotonic()
        while not self._stopped.wait(TICK_S):
            with self._lock:
                contexts = [c for c in self._running.values() if not c.cancelled.is_set()]
            self._enforce_time_limit(contexts)
            live = [c for c in contexts if not c.cancelled.is_set()]
            if live and time.monotonic() - last_beat >= heartbeat_interval_s(live):
                self._heartbeat(live)
                last_beat = time.monotonic()

    def _heartbeat(self, contexts: list[JobContext]) -> None:
        for start in range(0, len(contexts), 1000):
            chunk = contexts[start : start + 1000]
            beat = self._retrying(
                partial(
                    self.queue.heartbeat, [c.job for c in chunk], lease_ms=self.settings.lease_ms
                ),
                "heartbeat",
            )
            if beat is None:
                continue
            lost = set(beat.lost)
            with self._lock:  # a run acknowledged meanwhile is done, not lost
                still_held = [c for c in chunk if c.job.token in self._running]
            for context in still_held:
                if context.job.id in lost:
                    context.cancelled.set()
                    log_lost(context)

    def _enforce_time_limit(self, contexts: list[JobContext]) -> None:
        limit = self.settings.time_limit_ms
        for context in past_time_limit(contexts, limit):
            context.cancelled.set()
            self._fail(context, TimeoutError(f"time limit of {limit} ms passed"))

    # -- stopping ------------------------------------------------------------------------------

    def _drain_on_stop(self) -> None:
        self._hand_back(self._take_unstarted())  # prefetched jobs no thread took: at once
        deadline = time.monotonic() + self.grace_s
        while self.running and time.monotonic() < deadline:
            self._pause.wait(0.02)
        with self._lock:
            left = [c for c in self._running.values() if not (c.cancelled.is_set() or c.finished)]
        self._hand_back(left)

    def _take_unstarted(self) -> list[JobContext]:
        """Take every leased job still waiting for a thread off the local queue."""
        unstarted = []
        while True:
            try:
                context = self._todo.get_nowait()
            except queue_module.Empty:
                break
            if context is not None:
                unstarted.append(context)
        for context in unstarted:
            context.cancelled.set()
            context.finished = True
            self._finish(context)
        with self._lock:
            self._outstanding -= len(unstarted)
        return unstarted

    def _hand_back(self, contexts: list[JobContext]) -> None:
        """Release leases this worker will not finish, so that another worker takes them."""
        if not contexts:
            return
        for context in contexts:
            context.cancelled.set()
        released = self._retrying(lambda: self.queue.release([c.job for c in contexts]), "release")
        logger.info(
            "worker %s handed back %d unfinished job(s)",
            self.worker_id,
            sum(1 for s in released or [] if s.status is Status.OK),
        )

    # -- Redis calls ---------------------------------------------------------------------------

    def _retrying(self, call: Callable[[], T], what: str) -> T | None:
        """Run ``call``, repeating it after connection errors with backoff (every call here
        is safe to repeat); None if the worker stops first."""
        for delay in retry_delays():
            try:
                return call()
            except TRANSIENT_ERRORS as exc:  # connection lost, or a cluster slot in motion
                logger.warning(
                    "worker %s: %s failed (%s); retrying in %.2fs", self.worker_id, what, exc, delay
                )
            if self._stopped.wait(delay):
                break
        return None
