"""The asyncio worker: runs a coroutine handler for each job of one queue, ``concurrency`` at a
time.

Every decision is made by the worker core (:mod:`scheduler._worker_core`), the same one the
thread worker (:mod:`scheduler.worker`) uses, so both claim (at most 1000 jobs per call, with
``prefetch``), acknowledge (results in batches, each item on its own), heartbeat (in chunks of
1000, with the ``started`` report), reap (about every second) and stop (grace, hand-back, a
bounded stop even while Redis is down) alike. This module only does the I/O, as asyncio tasks:
a claim lane, an acknowledge lane, a heartbeat lane, a ticker, and one task per running job.

A lost lease or a passed time limit *cancels* the job's task (and sets its
:attr:`~scheduler.worker.JobContext.cancelled` flag). An unexpected error in a helper stops the
worker at once (no more claims or heartbeats) and :meth:`AsyncWorker.run` raises
:class:`~scheduler.errors.WorkerCrashed`.

:meth:`AsyncWorker.stop` may be called from the event loop, from any other thread, or from a
signal handler (``loop.add_signal_handler(signal.SIGTERM, worker.stop)`` or a plain
``signal.signal``): it sets a flag and schedules the stop on the loop, nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis
import redis.asyncio

from ._models import Job
from ._wake import AsyncWakeWaiter
from ._worker_actions import (
    Action,
    Cancel,
    Claim,
    Complete,
    EndWait,
    Exit,
    Fail,
    Heartbeat,
    Lane,
    Reap,
    Release,
    Run,
    WaitForWork,
)
from ._worker_context import (
    Interrupted,
    JobContext,
    RunOutcome,
    WorkerSettings,
    describe_error,
    error_outcome,
    result_encoder,
    result_outcome,
)
from ._worker_core import TICK_S, WAIT_MARGIN_S, Phase, WorkerCore, retry_delays
from ._worker_log import logger
from .aio import AsyncQueue
from .connection import TRANSIENT_ERRORS
from .errors import ConfigError, JobError, WorkerCrashed
from .sharded import AsyncShardedQueue, wake_keys

T = TypeVar("T")

AsyncHandler = Callable[[Job, JobContext], Awaitable[Any]]
"""A coroutine job handler: its return value is the job's result; an exception fails it."""

LEFTOVER_S = 1.0
"""Once stopped, how long :meth:`AsyncWorker.run` waits for cancelled job tasks to end."""

_LANES = (Lane.CLAIM, Lane.ACK, Lane.BEAT)


class AsyncWorker:
    """Runs ``handler`` for every job of ``queue``; arguments as for
    :class:`scheduler.worker.Worker` (``prefetch`` included: jobs leased ahead of a free
    slot), with ``concurrency`` coroutines at once instead of threads (default 16)."""

    def __init__(
        self,
        queue: AsyncQueue | AsyncShardedQueue,
        handler: AsyncHandler,
        *,
        concurrency: int = 16,
        prefetch: int | None = None,
        worker_id: str | None = None,
        lease_ms: int | None = None,
        time_limit_ms: int | None = None,
        grace_s: float = 30.0,
        max_idle_s: float = 5.0,
    ) -> None:
        if not callable(handler):
            raise ConfigError(f"the handler must be callable, not {handler!r:.60}")
        self.settings = WorkerSettings.build(
            concurrency, prefetch, worker_id, lease_ms, time_limit_ms, grace_s, max_idle_s
        )
        self.queue = queue
        self.handler = handler
        self.worker_id = self.settings.worker_id
        self.grace_s = self.settings.grace_s
        self._core = WorkerCore(self.settings)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_flag = False
        self._stop_taken = False
        self._stopping: asyncio.Event | None = None  # made in run(): set once the stop is taken
        self._inboxes: dict[Lane, asyncio.Queue[Action]] = {}
        self._tasks: dict[str, tuple[JobContext, asyncio.Task[None]]] = {}  # by lease token
        self._waiter: AsyncWakeWaiter | None = None
        self._wait_task: asyncio.Task[None] | None = None
        self._encode = result_encoder(queue)
        self._performers: dict[type, Callable[[Any], Awaitable[None]]] = {
            Claim: self._claim,
            WaitForWork: self._wait_for_work,
            Release: self._release,
            Complete: self._complete,
            Fail: self._fail,
            Heartbeat: self._heartbeat,
            Reap: self._reap,
        }

    # -- public --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Work until :meth:`stop`; then finish or hand back every job and return.

        Raises:
            WorkerCrashed: a helper failed unexpectedly (its error is the ``__cause__``).
        """
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._inboxes = {lane: asyncio.Queue() for lane in _LANES}
        waiter = self._waiter = AsyncWakeWaiter(self.queue.client, wake_keys(self.queue))
        logger.info("worker %s started on queue %s", self.worker_id, self.queue.name)
        helpers = [asyncio.create_task(self._lane(lane)) for lane in _LANES]
        helpers.append(asyncio.create_task(self._ticker()))
        try:
            self._feed(self._core.start)
            await asyncio.gather(*helpers)
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.wait(helpers)
            await self._cancel_leftovers()
            await waiter.aclose()
        logger.info("worker %s stopped", self.worker_id)
        crashed = self._core.crashed
        if crashed is not None:
            raise WorkerCrashed(
                f"the worker stopped because a helper failed: {describe_error(crashed)}",
                worker_id=self.worker_id,
            ) from crashed

    def stop(self) -> None:
        """Stop claiming; running jobs get the grace period, then are handed back. Safe from
        any thread and from a signal handler, and idempotent."""
        self._stop_flag = True
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing runs
                loop.call_soon_threadsafe(self._feed, self._core.tick)

    @property
    def running(self) -> int:
        """How many jobs are running now."""
        return self._core.running

    # -- the core ------------------------------------------------------------------------------

    def _feed(self, event: Callable[..., list[Action]], *args: Any) -> None:
        now = time.monotonic()
        actions = self._take_stop(now)
        actions += event(*args, now)
        self._dispatch(actions)

    def _take_stop(self, now: float) -> list[Action]:
        if not self._stop_flag or self._stop_taken or self._stopping is None:
            return []
        self._stop_taken = True
        self._stopping.set()
        return self._core.stop_requested(now)

    def _gives_up(self, action: Action) -> bool:
        now = time.monotonic()
        self._dispatch(self._take_stop(now))
        return self._core.give_up(action, now)

    def _dispatch(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Run):
                self._start(action.context)
            elif isinstance(action, Cancel):
                self._cancel(action)
            elif isinstance(action, EndWait):
                if self._wait_task is not None:
                    self._wait_task.cancel()  # closes the waiting connection
            elif action.lane in self._inboxes:
                self._inboxes[action.lane].put_nowait(action)

    def _start(self, context: JobContext) -> None:
        token = context.job.token
        task = asyncio.create_task(self._run_one(context))
        self._tasks[token] = (context, task)
        task.add_done_callback(lambda _: self._forget(token, task))

    def _forget(self, token: str, task: asyncio.Task[None]) -> None:
        held = self._tasks.get(token)
        if held is not None and held[1] is task:
            del self._tasks[token]

    def _cancel(self, action: Cancel) -> None:
        for context in action.contexts:
            held = self._tasks.get(context.job.token)
            # A task not begun is left to start: the core tells it to skip (cancelling it
            # before its first step would skip the report the core waits for).
            if held is not None and held[0] is context and context.begun:
                held[1].cancel()

    async def _cancel_leftovers(self) -> None:
        tasks = [task for _, task in self._tasks.values()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=LEFTOVER_S)

    # -- the helpers ---------------------------------------------------------------------------

    async def _lane(self, lane: Lane) -> None:
        inbox = self._inboxes[lane]
        while True:
            action = await inbox.get()
            if isinstance(action, Exit):
                return
            try:
                await self._performers[type(action)](action)
            except Exception as exc:  # a bug, not a bad job: the worker stops
                self._feed(self._core.helper_failed, lane, action, exc)

    async def _ticker(self) -> None:
        while self._core.phase is not Phase.STOPPED:
            await asyncio.sleep(TICK_S)
            try:
                self._feed(self._core.tick)
            except Exception as exc:
                self._feed(self._core.helper_failed, Lane.BEAT, None, exc)

    async def _run_one(self, context: JobContext) -> None:
        try:
            self._feed(self._core.started, context)
            if not context.begun:
                return  # handed back or lost before it began
            outcome = await self._outcome(context)
            self._feed(self._core.finished, context, outcome)
        except Exception as exc:
            self._feed(self._core.helper_failed, Lane.RUN, None, exc)

    async def _outcome(self, context: JobContext) -> RunOutcome:
        try:
            result = await self.handler(context.job, context)
        except asyncio.CancelledError:
            return Interrupted()  # the core cancelled it (lease lost, time limit, stop)
        except Exception as exc:  # the job's failure, reported through fail()
            return error_outcome(exc)
        return result_outcome(result, self._encode)

    # -- the actions ---------------------------------------------------------------------------

    async def _claim(self, action: Claim) -> None:
        action = self._core.refresh(action, time.monotonic())  # sized now (see the core)
        claimed, _ = await self._retrying(
            action,
            lambda: self.queue.claim(
                self.worker_id,
                count=action.count,
                claim_id=action.claim_id,
                lease_ms=action.lease_ms,
            ),
        )
        self._feed(self._core.claimed, action, claimed)

    async def _wait_for_work(self, action: WaitForWork) -> None:
        waiter = self._waiter
        if waiter is not None and not self._gives_up(action):
            task = asyncio.create_task(waiter.wait(action.timeout_s))
            self._wait_task = task
            try:
                await asyncio.wait({task}, timeout=action.timeout_s + WAIT_MARGIN_S)
            finally:
                self._wait_task = None
                if not task.done():
                    task.cancel()
                    await asyncio.wait({task})
            await self._after_wait(task)
        self._feed(self._core.waited)

    async def _after_wait(self, task: asyncio.Task[None]) -> None:
        error = None if task.cancelled() else task.exception()
        if isinstance(error, redis.ConnectionError | redis.TimeoutError):
            logger.warning(
                "worker %s: waiting for work failed (%s); claiming again", self.worker_id, error
            )
            await asyncio.sleep(0.1)
        elif error is not None:
            raise error

    async def _complete(self, action: Complete) -> None:
        action = self._core.refresh(action, time.monotonic())  # with results finished since
        items = [(context.job, result) for context, result in action.items]
        statuses, retried = await self._retrying(action, lambda: self.queue.complete_many(items))
        self._feed(self._core.completed, action, statuses, retried)

    async def _fail(self, action: Fail) -> None:
        async def call() -> Any:
            try:
                return await self.queue.fail(
                    action.context.job, action.error, retryable=action.retryable
                )
            except JobError as exc:  # lease lost, job gone or unreadable: no longer ours
                return exc

        answer, retried = await self._retrying(action, call)
        self._feed(self._core.failed, action, answer, retried)

    async def _release(self, action: Release) -> None:
        jobs = [context.job for context in action.contexts]
        statuses, retried = await self._retrying(
            action, lambda: self.queue.release(jobs, started=action.started)
        )
        self._feed(self._core.released, action, statuses, retried)

    async def _heartbeat(self, action: Heartbeat) -> None:
        jobs = [context.job for context in action.contexts]
        beat, _ = await self._retrying(
            action,
            lambda: self.queue.heartbeat(jobs, lease_ms=action.lease_ms, started=action.started),
        )
        self._feed(self._core.beaten, action, beat)

    async def _reap(self, action: Reap) -> None:
        reaped, _ = await self._retrying(action, lambda: self.queue.reap(limit=action.limit))
        self._feed(self._core.reaped, action, reaped)

    async def _retrying(
        self, action: Action, call: Callable[[], Awaitable[T]]
    ) -> tuple[T | None, bool]:
        """Await ``call()``, repeating it after connection errors with backoff until the core
        gives it up (None); also says whether it was repeated (see :mod:`scheduler.worker`)."""
        retried = False
        for delay in retry_delays():
            if self._gives_up(action):
                break
            try:
                return await call(), retried
            except TRANSIENT_ERRORS as exc:  # connection lost, or a cluster slot in motion
                logger.warning(
                    "worker %s: %s failed (%s); retrying in %.2fs",
                    self.worker_id,
                    type(action).__name__.lower(),
                    exc,
                    delay,
                )
                retried = True
            await self._sleep(delay)
        return None, retried

    async def _sleep(self, delay: float) -> None:
        pause = self._core.pause_s(delay, time.monotonic())
        if self._core.stopping or self._stopping is None:
            await asyncio.sleep(pause)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), pause)  # a stop ends the pause
