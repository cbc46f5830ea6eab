"""The thread-pool worker: runs a handler for each job of one queue, on N threads.

Every decision is made by the worker core (:mod:`scheduler._worker_core`), the same one the
asyncio worker uses; this module only does the I/O and the waiting, on these threads:

* the **claim** lane (the thread that called :meth:`Worker.run`) claims as many jobs as there is
  room for, waits on the queue's wake LIST with ``BLPOP`` when the queue is empty (on a
  connection of its own, never longer than until the next delayed job or lease deadline), and
  hands back leases on stop;
* the **runners** (``concurrency`` threads) run the handler and encode its result at once: a
  result msgpack cannot encode fails that job alone, non-retryable, with the reason;
* the **acknowledge** lane sends results in batches (``complete_many``) and failures one
  ``fail`` each; each item's answer is handled on its own (a lease found no longer ours is
  logged with the job id, never raised);
* the **heartbeat** lane extends every lease held (in chunks of 1000, with the ``started``
  report of the jobs whose handler began) and runs ``reap`` about every second;
* the **ticker** tells the core the time every 20 ms (time limits, heartbeats and reaping
  fall due, the stop proceeds) and takes a stop request.

A lost lease (the heartbeat reply names it) or a passed time limit sets the job's
:attr:`JobContext.cancelled` flag; a thread cannot be killed, so a handler should look at it in
long loops; its result is then discarded (the core module's docstring has the timeline of a
lease lost while a handler finishes).

**Stopping.** :meth:`Worker.stop` only sets a flag and wakes the ticker (a
``queue.SimpleQueue.put``, safe in a signal handler): no lock, no Redis call. So::

    worker = Worker(queue, handler)
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    worker.run()  # in the main thread; returns once stopped

The worker's own threads then end the idle ``BLPOP``, hand back jobs not begun at once, give
running ones ``grace_s`` and hand back what is left, with its ``started`` report (its attempt
stays counted). Calls repeated after connection errors are abandoned at the stop deadline
(``grace_s`` + a few seconds), so a stop is bounded even while Redis is down.

**Supervision.** An unexpected error in claiming, acknowledging, heartbeating or reaping (a
bug, not a bad job) is logged with its traceback and stops the worker at once: no more claims
or heartbeats (leases it cannot acknowledge expire, so other workers take the jobs), what can
be handed back is, and :meth:`Worker.run` raises :class:`~scheduler.errors.WorkerCrashed`.

Every Redis call is repeated after a connection error, with backoff, and is safe to repeat
(claim ids, lease tokens); the blocking pop is never re-sent after a reconnect: the claim lane
goes back to claiming first.
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

from ._models import Job
from ._server_checks import check_server
from ._wake import WakeWaiter
from ._worker_actions import (
    Action,
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
    JobContext,
    NonRetryable,
    RunOutcome,
    WorkerSettings,
    default_worker_id,
    describe_error,
    error_outcome,
    result_encoder,
    result_outcome,
)
from ._worker_core import TICK_S, ActionT, Phase, WorkerCore, retry_delays
from ._worker_log import logger
from .client import Queue
from .connection import TRANSIENT_ERRORS
from .errors import ConfigError, JobError, WorkerCrashed
from .sharded import ShardedQueue, wake_keys

T = TypeVar("T")

Handler = Callable[[Job, JobContext], Any]
"""A job handler: its return value is the job's result; an exception fails the attempt."""

JOIN_S = 2.0
"""How long :meth:`Worker.run` waits for each helper thread to end once the worker stopped."""

__all__ = ["Handler", "JobContext", "NonRetryable", "Worker", "default_worker_id"]


class Worker:
    """Runs ``handler`` for every job of ``queue`` on ``concurrency`` threads (see the module).

    Args:
        queue: the queue to work on (a :class:`~scheduler.sharded.ShardedQueue`: all its shards).
        handler: called as ``handler(job, context)`` on a pool thread.
        concurrency: how many jobs run at once (one thread each), 1..10000.
        prefetch: how many more jobs may be leased ahead of a free thread, 0..10000 (default:
            as many as ``concurrency``). More prefetch means fewer, larger claims: faster for
            short jobs, but a prefetched job waits behind the running ones.
        worker_id: how the monitor names this worker (default: host, pid and a random suffix).
        lease_ms: lease per claim (default: each job's own).
        time_limit_ms: fail a job that runs longer than this (None: no limit).
        grace_s: on stop, how long running jobs may take before they are handed back.
        max_idle_s: the longest a blocking wait for work lasts before the worker claims again.

    Raises:
        ConfigError: a setting out of its range (checked here, before anything runs).
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
        self._lock = threading.Lock()  # guards the core; never taken by stop()
        self._stop_flag = False  # set by stop(), taken to the core by the worker's threads
        self._stop_taken = False
        self._ticks: queue_module.SimpleQueue[None] = queue_module.SimpleQueue()
        self._inboxes: dict[Lane, queue_module.SimpleQueue[Action]] = {
            lane: queue_module.SimpleQueue() for lane in (Lane.CLAIM, Lane.ACK, Lane.BEAT)
        }
        self._todo: queue_module.SimpleQueue[JobContext | None] = queue_module.SimpleQueue()
        self._stopping = threading.Event()  # set once the stop is taken: ends retry pauses
        self._pause = threading.Event()  # never set: waiting on it is a plain sleep
        self._encode = result_encoder(queue)
        self._performers: dict[type, Callable[[Any], None]] = {
            Claim: self._claim,
            WaitForWork: self._wait_for_work,
            Release: self._release,
            Complete: self._complete,
            Fail: self._fail,
            Heartbeat: self._heartbeat,
            Reap: self._reap,
        }
        # BLPOP on a connection of its own; no wait is longer than max_idle_s
        self._waiter = WakeWaiter(queue.client, wake_keys(queue), max_wait_s=max_idle_s)

    # -- public --------------------------------------------------------------------------------

    def run(self) -> None:
        """Work until :meth:`stop` is called; then finish or hand back every job and return.

        Raises:
            WorkerCrashed: a helper failed unexpectedly (its error is the ``__cause__``); the
                worker stopped claiming and heartbeating at once and handed back what it could.
        """
        logger.info("worker %s started on queue %s", self.worker_id, self.queue.name)
        with contextlib.suppress(redis.RedisError):
            check_server(self.queue.client)  # logs what to fix: eviction, persistence, version
        helpers = [
            threading.Thread(target=self._lane, args=(Lane.ACK,), name="scheduler-acknowledge"),
            threading.Thread(target=self._lane, args=(Lane.BEAT,), name="scheduler-heartbeat"),
            threading.Thread(target=self._ticker, name="scheduler-ticker"),
        ]
        runners = [
            threading.Thread(target=self._runner, name=f"scheduler-job-{i}")
            for i in range(self.settings.concurrency)
        ]
        for thread in helpers + runners:
            thread.daemon = True
            thread.start()
        try:
            self._feed(self._core.start)
            self._lane(Lane.CLAIM)
        except BaseException as exc:  # KeyboardInterrupt in the main thread, say: stop beating
            self._feed(self._core.helper_failed, Lane.CLAIM, None, exc)
            raise
        finally:
            for _ in runners:  # a runner still in a handler ends after it; never waited for
                self._todo.put(None)
            for thread in helpers:
                thread.join(JOIN_S)
            self._waiter.close()
        logger.info("worker %s stopped", self.worker_id)
        crashed = self._core.crashed
        if crashed is not None:
            raise WorkerCrashed(
                f"the worker stopped because a helper failed: {describe_error(crashed)}",
                worker_id=self.worker_id,
            ) from crashed

    def stop(self) -> None:
        """Stop claiming; running jobs get the grace period, then are handed back.

        Safe from a signal handler and from any thread, and idempotent: it only sets a flag
        and wakes the worker's ticker (no lock, no Redis call); the worker's own threads end
        the idle wait and hand jobs back, within a tick.
        """
        self._stop_flag = True
        self._ticks.put(None)  # SimpleQueue.put is reentrant: safe in a signal handler

    @property
    def running(self) -> int:
        """How many jobs are running now."""
        return self._core.running

    # -- the core, under the lock --------------------------------------------------------------

    def _feed(self, event: Callable[..., list[Action]], *args: Any) -> None:
        """Tell the core about an event (and a stop request, if one is pending); do what it
        answers."""
        with self._lock:
            now = time.monotonic()
            actions = self._take_stop(now) if self._stop_flag else []
            actions += event(*args, now)
        if actions:
            self._dispatch(actions)

    def _take_stop(self, now: float) -> list[Action]:
        if not self._stop_flag or self._stop_taken:
            return []
        self._stop_taken = True
        self._stopping.set()
        return self._core.stop_requested(now)

    def _gives_up(self, action: Action) -> bool:
        core = self._core
        if not self._stop_flag and core.phase is Phase.RUNNING and core.crashed is None:
            return False  # the core's answer while running (read without the lock: hot path)
        with self._lock:
            now = time.monotonic()
            actions = self._take_stop(now)
            answer = self._core.give_up(action, now)
        self._dispatch(actions)
        return answer

    def _dispatch(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Run):
                self._todo.put(action.context)
            elif isinstance(action, EndWait):
                with contextlib.suppress(redis.RedisError):
                    self._waiter.unblock()  # ends the claim lane's BLPOP
            elif action.lane in self._inboxes:
                self._inboxes[action.lane].put(action)
            # Cancel: the core set the flags already (a thread cannot be interrupted); the
            # runners' Exit: run() releases them when it returns.

    # -- the helpers ---------------------------------------------------------------------------

    def _lane(self, lane: Lane) -> None:
        """Do ``lane``'s actions one after the other until it is told to end."""
        inbox = self._inboxes[lane]
        while True:
            action = inbox.get()
            if isinstance(action, Exit):
                return
            try:
                self._performers[type(action)](action)
            except Exception as exc:  # a bug, not a bad job: the worker stops
                self._feed(self._core.helper_failed, lane, action, exc)

    def _ticker(self) -> None:
        while self._core.phase is not Phase.STOPPED:
            with contextlib.suppress(queue_module.Empty):
                self._ticks.get(timeout=TICK_S)  # stop() wakes it at once
            try:
                self._feed(self._core.tick)
            except Exception as exc:
                self._feed(self._core.helper_failed, Lane.BEAT, None, exc)

    def _runner(self) -> None:
        while True:
            context = self._todo.get()
            if context is None:
                return
            try:
                self._feed(self._core.started, context)
                # A runner that finishes a job runs the next one the core hands out itself:
                # waking another thread for it costs more than most short jobs.
                while context is not None and context.begun:
                    context = self._run_one(context)
            except Exception as exc:
                self._feed(self._core.helper_failed, Lane.RUN, None, exc)

    def _run_one(self, context: JobContext) -> JobContext | None:
        """Run one job; the next job this runner has begun, if the core handed one out."""
        outcome: RunOutcome
        try:
            result = self.handler(context.job, context)
            outcome = result_outcome(result, self._encode)
        except BaseException as exc:  # the job's failure, reported through fail()
            outcome = error_outcome(exc)
        with self._lock:  # one round: this job's end, and the start of the next one
            now = time.monotonic()
            actions = self._take_stop(now)
            actions += self._core.finished(context, outcome, now)
            following = next((a for a in actions if isinstance(a, Run)), None)
            if following is not None:
                actions.remove(following)
                actions += self._core.started(following.context, now)
        self._dispatch(actions)
        return None if following is None else following.context

    # -- the actions ---------------------------------------------------------------------------

    def _refresh(self, action: ActionT) -> ActionT:
        with self._lock:
            return self._core.refresh(action, time.monotonic())

    def _claim(self, action: Claim) -> None:
        action = self._refresh(action)  # sized now: the room freed meanwhile is claimed too
        claimed, _ = self._retrying(
            action,
            partial(
                self.queue.claim,
                self.worker_id,
                count=action.count,
                claim_id=action.claim_id,
                lease_ms=action.lease_ms,
            ),
        )
        self._feed(self._core.claimed, action, claimed)

    def _wait_for_work(self, action: WaitForWork) -> None:
        try:
            if not self._gives_up(action):
                self._waiter.wait(action.timeout_s)  # never re-sent: we claim again first
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            logger.warning(
                "worker %s: waiting for work failed (%s); claiming again", self.worker_id, exc
            )
            self._stopping.wait(0.1)
        self._feed(self._core.waited)

    def _complete(self, action: Complete) -> None:
        action = self._refresh(action)  # with the results finished meanwhile
        items = [(context.job, result) for context, result in action.items]
        statuses, retried = self._retrying(action, partial(self.queue.complete_many, items))
        self._feed(self._core.completed, action, statuses, retried)

    def _fail(self, action: Fail) -> None:
        def call() -> Any:
            try:
                return self.queue.fail(
                    action.context.job, action.error, retryable=action.retryable
                )
            except JobError as exc:  # lease lost, job gone or unreadable: no longer ours
                return exc

        answer, retried = self._retrying(action, call)
        self._feed(self._core.failed, action, answer, retried)

    def _release(self, action: Release) -> None:
        jobs = [context.job for context in action.contexts]
        statuses, retried = self._retrying(
            action, partial(self.queue.release, jobs, started=action.started)
        )
        self._feed(self._core.released, action, statuses, retried)

    def _heartbeat(self, action: Heartbeat) -> None:
        jobs = [context.job for context in action.contexts]
        beat, _ = self._retrying(
            action,
            partial(self.queue.heartbeat, jobs, lease_ms=action.lease_ms, started=action.started),
        )
        self._feed(self._core.beaten, action, beat)

    def _reap(self, action: Reap) -> None:
        reaped, _ = self._retrying(action, partial(self.queue.reap, limit=action.limit))
        self._feed(self._core.reaped, action, reaped)

    def _retrying(self, action: Action, call: Callable[[], T]) -> tuple[T | None, bool]:
        """Run ``call``, repeating it after connection errors with backoff (every call here
        is safe to repeat) until the core gives it up (None). Also says whether it was
        repeated: a refusal of a repeat may mean that its first try was applied."""
        retried = False
        for delay in retry_delays():
            if self._gives_up(action):
                break
            try:
                return call(), retried
            except TRANSIENT_ERRORS as exc:  # connection lost, or a cluster slot in motion
                logger.warning(
                    "worker %s: %s failed (%s); retrying in %.2fs",
                    self.worker_id,
                    type(action).__name__.lower(),
                    exc,
                    delay,
                )
                retried = True
            self._sleep(delay)
        return None, retried

    def _sleep(self, delay: float) -> None:
        """Pause between two tries: a stop request ends a pause begun while running; once
        stopping, pauses end at the stop deadline."""
        with self._lock:
            pause = self._core.pause_s(delay, time.monotonic())
            stopping = self._core.stopping
        (self._pause if stopping else self._stopping).wait(pause)
