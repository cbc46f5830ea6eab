"""The asyncio worker: runs a coroutine handler for each job of one queue, ``concurrency`` at
a time. The same loop design as :mod:`scheduler.worker` (claimer, runners, acker, heartbeat),
as asyncio tasks; a lost lease or a passed time limit *cancels* the job's task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import redis
import redis.asyncio

from ._models import Claimed, Job
from ._ops import new_id
from ._status import Status
from .aio import AsyncQueue
from .errors import LeaseLost, SchedulerError
from .worker import TICK_S, JobContext, NonRetryable, default_worker_id

logger = logging.getLogger("scheduler.worker")
T = TypeVar("T")

AsyncHandler = Callable[[Job, JobContext], Awaitable[Any]]
"""A coroutine job handler: its return value is the job's result; an exception fails it."""


class AsyncWorker:
    """Runs ``handler`` for every job of ``queue``; arguments as for
    :class:`scheduler.worker.Worker`."""

    def __init__(
        self,
        queue: AsyncQueue,
        handler: AsyncHandler,
        *,
        concurrency: int = 16,
        worker_id: str | None = None,
        lease_ms: int | None = None,
        time_limit_ms: int | None = None,
        grace_s: float = 30.0,
        max_idle_s: float = 5.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.queue = queue
        self.handler = handler
        self.concurrency = concurrency
        self.worker_id = worker_id or default_worker_id()
        self.lease_ms = lease_ms
        self.time_limit_ms = time_limit_ms
        self.grace_s = grace_s
        self.max_idle_s = max_idle_s
        self._running: dict[str, tuple[JobContext, asyncio.Task[None]]] = {}
        self._finished: asyncio.Queue[tuple[JobContext, Any, BaseException | None]] | None = None
        self._stopping = asyncio.Event()
        self._free = asyncio.Event()

    async def run(self) -> None:
        """Work until :meth:`stop`; then finish or hand back every job and return."""
        self._finished = asyncio.Queue()
        waiter = self._blocking_client()
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
            await waiter.connection_pool.disconnect()
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

    async def _claim_loop(self, waiter: redis.asyncio.Redis) -> None:
        while not self._stopping.is_set():
            free = self.concurrency - len(self._running)
            if free <= 0:
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
                self.worker_id, count=count, claim_id=claim_id, lease_ms=self.lease_ms
            ),
            "claim",
        )

    def _start(self, job: Job, lease_ms: int) -> None:
        for context, task in [v for v in self._running.values() if v[0].job.id == job.id]:
            context.cancelled.set()  # an older run of a job claimed again: its lease is lost
            task.cancel()
        context = JobContext(job, self.worker_id, lease_ms)
        task = asyncio.create_task(self._run_one(context))
        self._running[job.token] = (context, task)

    async def _wait_for_work(self, waiter: redis.asyncio.Redis, claimed: Claimed) -> None:
        timeout = self.max_idle_s
        if claimed.next_ms is not None:
            timeout = min(timeout, max(0.0, (claimed.next_ms - claimed.now_ms) / 1000))
        if timeout <= 0.001:
            return

        async def blpop() -> None:
            await waiter.blpop([self.queue.ops.keys.key("wake")], timeout)

        wake = asyncio.create_task(blpop())
        stop = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({wake, stop}, timeout=timeout + 1, return_when="FIRST_COMPLETED")
        finally:
            stop.cancel()
            if not wake.done():
                wake.cancel()
            with contextlib.suppress(asyncio.CancelledError, redis.RedisError):
                await wake

    def _blocking_client(self) -> redis.asyncio.Redis:
        """A client of its own for BLPOP, with no retries: a blocking command is never re-sent."""
        pool = self.queue.client.connection_pool
        kwargs = dict(pool.connection_kwargs)
        kwargs.update(retry=redis.asyncio.retry.Retry(redis.backoff.NoBackoff(), 0))
        kwargs["socket_timeout"] = None
        return redis.asyncio.Redis(
            connection_pool=redis.asyncio.ConnectionPool(
                connection_class=pool.connection_class, **kwargs
            )
        )

    # -- the runners ---------------------------------------------------------------------------

    async def _run_one(self, context: JobContext) -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            if self.time_limit_ms is None:
                result = await self.handler(context.job, context)
            else:
                result = await asyncio.wait_for(
                    self.handler(context.job, context), self.time_limit_ms / 1000
                )
        except TimeoutError:
            error = TimeoutError(f"time limit of {self.time_limit_ms} ms passed")
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
            while not self._finished.empty() and len(batch) < 1000:
                batch.append(self._finished.get_nowait())
            try:
                await self._acknowledge(batch)
            finally:
                for _ in batch:
                    self._finished.task_done()

    async def _acknowledge(self, batch: list[tuple[JobContext, Any, BaseException | None]]) -> None:
        successes = []
        for context, result, error in batch:
            if context.cancelled.is_set():
                logger.info(
                    "job %s (attempt %d): result discarded, the lease is not ours",
                    context.job.id,
                    context.job.attempt,
                )
            elif error is None:
                successes.append((context.job, result))
            else:
                await self._fail(context, error)
        if successes:
            statuses = await self._retrying(lambda: self.queue.complete_many(successes), "complete")
            for (job, _), item in zip(successes, statuses or [], strict=False):
                if item.status not in (Status.OK, Status.DUPLICATE):
                    logger.warning(
                        "job %s (attempt %d): completion refused: %s",
                        job.id,
                        job.attempt,
                        item.status.value,
                    )
        for context, _, _ in batch:
            self._running.pop(context.job.token, None)
        self._free.set()

    async def _fail(self, context: JobContext, error: BaseException) -> None:
        job, text = context.job, f"{type(error).__name__}: {error}"
        retryable = not isinstance(error, NonRetryable)
        try:
            failed = await self._retrying(
                lambda: self.queue.fail(job, text, retryable=retryable), "fail"
            )
            if failed is not None:
                logger.info(
                    "job %s (attempt %d) failed (%s): %s",
                    job.id,
                    job.attempt,
                    failed.outcome.value,
                    text,
                )
        except LeaseLost:
            logger.warning(
                "job %s (attempt %d): failure not recorded, lease lost", job.id, job.attempt
            )

    # -- the heartbeat -------------------------------------------------------------------------

    async def _beat_loop(self) -> None:
        last_beat = time.monotonic()
        while True:
            await asyncio.sleep(TICK_S)
            live = [(c, t) for c, t in self._running.values() if not c.cancelled.is_set()]
            if not live:
                continue
            interval = max(0.02, min(min(c.lease_ms for c, _ in live) / 3000, 10.0))
            if time.monotonic() - last_beat < interval:
                continue
            last_beat = time.monotonic()
            jobs = [c.job for c, _ in live]
            beat = await self._retrying(
                partial(self.queue.heartbeat, jobs, lease_ms=self.lease_ms), "heartbeat"
            )
            lost = set(beat.lost) if beat is not None else set()
            for context, task in live:
                if context.job.id in lost:
                    context.cancelled.set()
                    task.cancel()
                    logger.warning(
                        "job %s (attempt %d): lease lost; cancelled on worker %s",
                        context.job.id,
                        context.job.attempt,
                        self.worker_id,
                    )

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
        here is safe to repeat); None if the worker is stopping by then."""
        delay = 0.05
        while True:
            try:
                return await call()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                logger.warning(
                    "worker %s: %s failed (%s); retrying in %.2fs", self.worker_id, what, exc, delay
                )
            except SchedulerError:
                raise
            if self._stopping.is_set() and what == "claim":
                return None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
