"""The asyncio worker: runs a coroutine handler for each job of one queue, ``concurrency`` at
a time. The same loop design as :mod:`scheduler.worker` (claimer, runners, acker, heartbeat),
as asyncio tasks; a lost lease or a passed time limit *cancels* the job's task.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import redis
import redis.asyncio

from ._models import Claimed, Job
from ._ops import new_id
from ._status import Status
from ._wake import AsyncWakeWaiter
from ._worker_core import (
    ACK_BATCH,
    TICK_S,
    Finished,
    JobContext,
    WorkerSettings,
    default_worker_id,
    describe_failure,
    heartbeat_interval_s,
    idle_wait_s,
    log_failed,
    log_lost,
    log_refused,
    logger,
    retry_delays,
    sort_finished,
)
from .aio import AsyncQueue
from .connection import TRANSIENT_ERRORS
from .errors import LeaseLost
from .sharded import AsyncShardedQueue, wake_keys

T = TypeVar("T")

AsyncHandler = Callable[[Job, JobContext], Awaitable[Any]]
"""A coroutine job handler: its return value is the job's result; an exception fails it."""


class AsyncWorker:
    """Runs ``handler`` for every job of ``queue``; arguments as for
    :class:`scheduler.worker.Worker`."""

    def __init__(
        self,
        queue: AsyncQueue | AsyncShardedQueue,
        handler: AsyncHandler,
        *,
        concurrency: int = 16,
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
        )
        self.worker_id = self.settings.worker_id
        self.grace_s = grace_s
        self._running: dict[str, tuple[JobContext, asyncio.Task[None]]] = {}
        self._finished: asyncio.Queue[Finished] | None = None
        self._stopping = asyncio.Event()
        self._free = asyncio.Event()
        self._latest: dict[str, JobContext] = {}  # by job id: the newest run of each job
        self._refill = max(1, concurrency // 4)

    async def run(self) -> None:
        """Work until :meth:`stop`; then finish or hand back every job and return."""
        self._finished = asyncio.Queue()
        waiter = AsyncWakeWaiter(self.queue.client, wake_keys(self.queue))
        logger.info("worker %s started on queue %s", self.worker_id, self.queue.name)
        helpers = [asyncio.create_task(self._ack_loop()), asyncio.create_task(self._beat_loop())]
        try:
            await self._claim_loop(waiter)
            await self._drain_on_stop()
        finally:
            await self._finished.join()
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await waiter.aclose()
        logger.info("worker %s stopped", self.worker_id)

    def stop(self) -> None:
        """Stop claiming; running jobs get the grace period, then are handed back."""
        self._stopping.set()
        self._free.set()

    @property
    def running(self) -> int:
        """How many jobs are running now."""
        return len(self._running)

    # -- the claimer ---------------------------------------------------------------------------

    async def _claim_loop(self, waiter: AsyncWakeWaiter) -> None:
        while not self._stopping.is_set():
            free = self.settings.concurrency - len(self._running)
            if free < self._refill and self._running:  # claim in batches, never leave it idle
                self._free.clear()
                await self._free.wait()
                continue
            claimed = await self._claim(free)
            if claimed is None:
                continue
            for job in claimed.jobs:
                self._start(job, job.deadline_ms - claimed.now_ms)
            if not claimed.jobs:
                await self._wait_for_work(waiter, claimed)

    async def _claim(self, count: int) -> Claimed | None:
        claim_id = new_id()  # one claim id for every retry of this claim
        return await self._retrying(
            lambda: self.queue.claim(
                self.worker_id, count=count, claim_id=claim_id, lease_ms=self.settings.lease_ms
            ),
            "claim",
        )

    def _start(self, job: Job, lease_ms: int) -> None:
        older = self._latest.get(job.id)
        if older is not None and older.job.token in self._running:
            older.cancelled.set()  # an older run of a job claimed again: its lease is lost
            self._running[older.job.token][1].cancel()
        context = JobContext(job, self.worker_id, lease_ms)
        self._latest[job.id] = context
        task = asyncio.create_task(self._run_one(context))
        self._running[job.token] = (context, task)

    async def _wait_for_work(self, waiter: AsyncWakeWaiter, claimed: Claimed) -> None:
        timeout = idle_wait_s(claimed, self.settings.max_idle_s)
        if timeout <= 0.001:
            return

        wake = asyncio.create_task(waiter.wait(timeout))
        stop = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({wake, stop}, timeout=timeout + 1, return_when="FIRST_COMPLETED")
        finally:
            stop.cancel()
            if not wake.done():
                wake.cancel()
            with contextlib.suppress(asyncio.CancelledError, redis.RedisError):
                await wake

    # -- the runners ---------------------------------------------------------------------------

    async def _run_one(self, context: JobContext) -> None:
        result: Any = None
        error: BaseException | None = None
        context.started = time.monotonic()
        context.begun = True
        try:
            if self.settings.time_limit_ms is None:
                result = await self.handler(context.job, context)
            else:
                result = await asyncio.wait_for(
                    self.handler(context.job, context), self.settings.time_limit_ms / 1000
                )
        except TimeoutError:
            error = TimeoutError(f"time limit of {self.settings.time_limit_ms} ms passed")
        except asyncio.CancelledError:
            context.cancelled.set()
        except Exception as exc:  # the job's failure, reported through fail()
            error = exc
        assert self._finished is not None
        self._finished.put_nowait((context, result, error))

    # -- the acker -----------------------------------------------------------------------------

    async def _ack_loop(self) -> None:
        assert self._finished is not None
        while True:
            batch = [await self._finished.get()]
            while not self._finished.empty() and len(batch) < ACK_BATCH:
                batch.append(self._finished.get_nowait())
            try:
                await self._acknowledge(batch)
            finally:
                for _ in batch:
                    self._finished.task_done()

    async def _acknowledge(self, batch: list[Finished]) -> None:
        successes, failures = sort_finished(batch)
        for context, error in failures:
            await self._fail(context, error)
        if successes:
            pairs = [(context.job, result) for context, result in successes]
            statuses = await self._retrying(lambda: self.queue.complete_many(pairs), "complete")
            log_refused([job for job, _ in pairs], statuses, self.worker_id)
        for context, _, _ in batch:
            job = context.job
            self._running.pop(job.token, None)
            if self._latest.get(job.id) is context:
                del self._latest[job.id]
        self._free.set()

    async def _fail(self, context: JobContext, error: BaseException) -> None:
        job = context.job
        text, retryable = describe_failure(error)
        try:
            failed = await self._retrying(
                lambda: self.queue.fail(job, text, retryable=retryable), "fail"
            )
        except LeaseLost:
            log_failed(context, None, text, lease_lost=True)
            return
        log_failed(context, failed, text, lease_lost=False)

    # -- the heartbeat -------------------------------------------------------------------------

    async def _beat_loop(self) -> None:
        last_beat = time.monotonic()
        while True:
            await asyncio.sleep(TICK_S)
            live = [(c, t) for c, t in self._running.values() if not c.cancelled.is_set()]
            if not live:
                continue
            interval = heartbeat_interval_s([c for c, _ in live])
            if time.monotonic() - last_beat < interval:
                continue
            last_beat = time.monotonic()
            jobs = [c.job for c, _ in live]
            beat = await self._retrying(
                partial(self.queue.heartbeat, jobs, lease_ms=self.settings.lease_ms), "heartbeat"
            )
            lost = set(beat.lost) if beat is not None else set()
            for context, task in live:
                if context.job.id in lost and context.job.token in self._running:
                    context.cancelled.set()
                    task.cancel()
                    log_lost(context)

    # -- stopping ------------------------------------------------------------------------------

    async def _drain_on_stop(self) -> None:
        tasks = [task for _, task in self._running.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=self.grace_s)
        left = [(c, t) for c, t in self._running.values() if not t.done()]
        if not left:
            return
        for context, task in left:
            context.cancelled.set()
            task.cancel()
        released = await self._retrying(
            lambda: self.queue.release([c.job for c, _ in left]), "release"
        )
        logger.info(
            "worker %s handed back %d unfinished job(s)",
            self.worker_id,
            sum(1 for s in released or [] if s.status is Status.OK),
        )
        await asyncio.gather(*(t for _, t in left), return_exceptions=True)

    # -- Redis calls ---------------------------------------------------------------------------

    async def _retrying(self, call: Callable[[], Awaitable[T]], what: str) -> T | None:
        """Await ``call()``, repeating it after connection errors with backoff (every call
        here is safe to repeat); None for a claim once the worker is stopping."""
        for delay in retry_delays():
            try:
                return await call()
            except TRANSIENT_ERRORS as exc:  # connection lost, or a cluster slot in motion
                logger.warning(
                    "worker %s: %s failed (%s); retrying in %.2fs", self.worker_id, what, exc, delay
                )
            if self._stopping.is_set() and what == "claim":
                break
            await asyncio.sleep(delay)
        return None
