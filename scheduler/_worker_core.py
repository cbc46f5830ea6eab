"""The worker core: every decision a worker makes, free of I/O.

:class:`WorkerCore` is a state machine. Its shell (:class:`scheduler.worker.Worker` on threads,
:class:`scheduler.aio_worker.AsyncWorker` on asyncio) tells it what happened, and it answers
with what to do next (:mod:`scheduler._worker_actions`); it never sleeps, never calls Redis and
never reads a clock (every event carries the monotonic time). So both workers claim, run,
acknowledge, heartbeat, reap and stop alike, and all of it is unit-tested without Redis.

Events: :meth:`~WorkerCore.start`, :meth:`~WorkerCore.claimed`, :meth:`~WorkerCore.waited`,
:meth:`~WorkerCore.started`, :meth:`~WorkerCore.finished`, :meth:`~WorkerCore.completed`,
:meth:`~WorkerCore.failed`, :meth:`~WorkerCore.released`, :meth:`~WorkerCore.beaten`,
:meth:`~WorkerCore.reaped`, :meth:`~WorkerCore.tick`, :meth:`~WorkerCore.stop_requested` and
:meth:`~WorkerCore.helper_failed`; each returns a list of actions. Right before a call is
sent, :meth:`~WorkerCore.refresh` sizes it (a claim, a batch of results) and
:meth:`~WorkerCore.give_up` says whether to send or repeat it at all.

What it decides:

* **claims**: room for ``concurrency`` running jobs plus ``prefetch`` leased ahead; a lease
  takes room from its claim until its handler returns. It claims again once a quarter of the
  room is free or a runner is idle, at most 1000 jobs per call, while the leases whose
  acknowledgement is on its way number no more than 1000 or the room (acknowledgements that
  lag far hold claims back). A claim is sized when it is sent (:meth:`WorkerCore.refresh`), so
  the room freed meanwhile goes in the same call. After an empty claim it waits for work
  (never past the next delayed job or lease deadline).
* **runs**: leased jobs go to runners in claim order, ``concurrency`` at a time. A job whose
  payload could not be decoded never runs: it is failed at once, non-retryable.
* **acknowledgements**: results go in batches of up to 1000 (one batch on its way at a time,
  so they batch up while one is sent; a batch takes the results finished until it is sent),
  failures one ``fail`` each; the answer to each item is handled on its own.
* **heartbeats**: every lease held, about every third of the shortest lease, in chunks of
  1000, with the ``started`` report of each lease whose handler began. A lease the reply names
  lost is cancelled (see the timeline below); a run past ``time_limit_ms`` is cancelled and
  failed with a timeout (which follows the retry policy).
* **reaping**: ``reap(limit=50)`` about every second (jittered by 20 %, so many workers do
  not reap in step), so recovery and trimming do not depend on claims.
* **stopping**: ``running`` → ``stopping`` (no more claims; jobs not yet begun are handed back
  at once; running jobs get ``grace_s``) → ``draining`` (what still runs is cancelled and
  handed back, with its ``started`` report, so its attempt stays counted) → ``stopped`` (every
  lease acknowledged or handed back, or the stop deadline, ``grace_s`` +
  :data:`HAND_BACK_S`, passed: what is left expires on its own).
* **a helper that fails** (an unexpected error in a claim, acknowledgement, heartbeat or reap:
  a bug, not a bad job) stops the worker at once: no claim or heartbeat is sent any more, so
  leases it cannot acknowledge expire and others take the jobs; what can be handed back is,
  within :data:`HAND_BACK_S`, and ``run()`` then raises :class:`~scheduler.errors.WorkerCrashed`.

A lost lease, a finishing handler and the heartbeat race; each step below is one event, and the
core's answer does not depend on which comes first::

    worker A                               Redis                        worker B
    ----------------------------------------------------------------------------------------
    claims job 7 (token t1)          ->    active: 7 (t1), deadline D
    handler runs; heartbeat sent     ->    deadline extended (t1 current)
    A pauses (GC, a frozen VM) past D
                                           reap: D passed, 7 waiting again
                                                                   <-  claims 7 (token t2)
    handler returns; result encoded
    heartbeat sent for t1            ->    "7 lost" (t2 is current)
    core: 7 is held, not acknowledged: lease lost; the cancel flag is set, the result is
          discarded and logged with the job id; nothing is sent for t1
      -- or, if the completion had gone first --
    complete(7, t1) sent             ->    refused: lease_lost (fenced by the token)
    heartbeat reply "7 lost" arrives while that completion is on its way: ignored (the
          completion's own answer decides, and is logged per job)
    core: "completion refused (lease_lost): the lease is no longer ours"

A completion repeated after a lost reply may find that its first try was applied; its answer
(``duplicate``, or ``not_found`` once the record was trimmed) is then logged as "outcome
unknown after a retry", not as a refusal.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from enum import Enum, IntEnum
from typing import Any, TypeVar, cast

from ._codec import Encoded
from ._models import Claimed, Failed, Heartbeat, ItemStatus, Job, Reaped
from ._ops import DEFAULT_REAP_LIMIT, new_id
from ._validate import MAX_BATCH, MAX_MS
from ._worker_actions import (
    Action,
    Cancel,
    Claim,
    Complete,
    EndWait,
    Exit,
    Fail,
    Lane,
    Reap,
    Release,
    Run,
    WaitForWork,
)
from ._worker_actions import Heartbeat as Beat
from ._worker_context import (
    Errored,
    Interrupted,
    JobContext,
    RunOutcome,
    Succeeded,
    WorkerSettings,
    payload_outcome,
)
from ._worker_log import (
    log_completions,
    log_discarded,
    log_fail_refused,
    log_failed,
    log_given_up,
    log_helper_failed,
    log_lost,
    log_released,
    logger,
)

ActionT = TypeVar("ActionT", bound=Action)

TICK_S = 0.02
"""How often a worker ticks its core (time limits, heartbeats, reaping, the stop's progress)."""
ACK_BATCH = MAX_BATCH
"""The most results acknowledged in one call."""
REAP_INTERVAL_S = 1.0
"""About how often each worker reaps its queue..."""
REAP_JITTER = 0.2
"""... give or take this share, drawn at random each time."""
REAP_LIMIT = DEFAULT_REAP_LIMIT
"""The most items of each kind one of a worker's reap calls handles."""
HAND_BACK_S = 3.0
"""How long past the grace period a stopping worker keeps trying to acknowledge and hand back
(Redis may be down): the stop deadline is ``grace_s`` + this."""
WAIT_MARGIN_S = 2.0
"""How long past its own timeout a blocking pop's reply may take before the wait is given up."""


class Phase(Enum):
    """Where a worker is in its life (see the module docstring)."""

    RUNNING = "running"
    STOPPING = "stopping"
    DRAINING = "draining"
    STOPPED = "stopped"


class _Slot(IntEnum):
    """Where a leased job is with the runners (an int: it indexes the counts, on the hot
    path)."""

    QUEUED = 0  # waits for a runner (prefetched)
    NONE = 1  # will not run (handed back or lost before it began, bad payload)
    DISPATCHED = 2  # handed to a runner, not begun yet
    RUNNING = 3  # the handler began
    RETURNED = 4  # the handler returned or raised


class _Hold(Enum):
    """Where a leased job's lease is."""

    HELD = "held"  # ours: heartbeated, nothing sent about it yet
    ACKING = "acking"  # a completion, failure or hand-back is on its way (still heartbeated)
    ENDED = "ended"  # answered, lost or given up: nothing more is sent about it


_BUSY = frozenset({_Slot.DISPATCHED, _Slot.RUNNING})
_UNHELD = frozenset({_Slot.NONE, _Slot.RETURNED})  # no runner has it, and none will


class _Lease:
    """The core's record of one lease it holds."""

    __slots__ = ("context", "hold", "slot", "token", "why")

    def __init__(self, context: JobContext) -> None:
        self.context = context
        self.token = context.job.token
        self.slot = _Slot.QUEUED
        self.hold = _Hold.HELD
        self.why = ""  # why its result would be discarded (set when the lease stops being held)


def idle_wait_s(claimed: Claimed, max_idle_s: float) -> float:
    """How long an idle worker may block for the wake signal: never past the next delayed job
    or lease deadline the empty claim named, nor past ``max_idle_s``."""
    if claimed.next_ms is None:
        return max_idle_s
    return min(max_idle_s, max(0.0, (claimed.next_ms - claimed.now_ms) / 1000))


def heartbeat_interval_s(shortest_lease_ms: int) -> float:
    """A third of the shortest lease held, between 20 ms and 10 s."""
    return max(0.02, min(shortest_lease_ms / 3000, 10.0))


def retry_delays() -> Iterator[float]:
    """Pauses between repeats of a call after connection errors: 50 ms doubling to 2 s."""
    delay = 0.05
    while True:
        yield delay
        delay = min(delay * 2, 2.0)


def blocking_connection_kwargs(
    kwargs: dict[str, Any], no_retry: Any, socket_timeout: float | None = None
) -> dict[str, Any]:
    """Connection settings for the blocking pop: no retries (a blocking command is never
    re-sent after a reconnect) and a socket timeout longer than any wait (``socket_timeout``:
    the longest wait plus :data:`WAIT_MARGIN_S`), so that a reply lost on a connection that
    stays open (half-open, after a NAT or firewall dropped its state) ends the wait instead of
    blocking the worker for good."""
    return {**kwargs, "retry": no_retry, "socket_timeout": socket_timeout}


def _granted_ms(job: Job, answer: Claimed) -> int:
    """The length of the lease a claim granted (server clock)."""
    return max(1, job.deadline_ms - answer.now_ms)


def _ms_ago(context: JobContext, now: float) -> int:
    return min(MAX_MS, max(0, int((now - context.started) * 1000)))


def started_report(contexts: Sequence[JobContext], now: float) -> dict[str, int]:
    """The ``started`` map of a heartbeat or hand-back: for each lease whose handler began,
    its token and how many ms ago it began."""
    return {c.job.token: _ms_ago(c, now) for c in contexts if c.begun}


def _chunks(items: Sequence[Any], size: int = MAX_BATCH) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class WorkerCore:
    """Every decision of one worker (see the module docstring).

    Args:
        settings: the worker's settings.
        rng: where the reap jitter is drawn from (a seeded one makes tests exact).
        new_claim_id: makes each claim's id (the same id is used for every retry of it).
    """

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        rng: random.Random | None = None,
        new_claim_id: Callable[[], str] = new_id,
    ) -> None:
        self.settings = settings
        self.capacity = settings.concurrency + settings.prefetch
        self.refill = max(1, self.capacity // 4)
        self.phase = Phase.RUNNING
        self.crashed: BaseException | None = None
        """The first unexpected error of a helper: the worker stops, and ``run()`` raises."""
        self._rng = rng or random.Random()
        self._new_claim_id = new_claim_id
        self._leases: dict[str, _Lease] = {}  # by token, in claim order
        self._latest: dict[str, _Lease] = {}  # by job id: the newest lease of each job
        self._queued: deque[_Lease] = deque()
        self._slots = [0] * len(_Slot)  # how many leases are at each slot
        self._timed: dict[str, _Lease] = {}  # begun runs under a time limit, in begin order
        self._lengths: Counter[int] = Counter()  # lease lengths of the leases not ended
        self._pending: dict[str, tuple[_Lease, Encoded]] = {}  # results not sent yet
        self._completing: Complete | None = None
        self._acks: set[Action] = set()  # completions, failures, hand-backs on their way
        self._beats: set[Action] = set()
        self._claiming: Claim | None = None
        self._waiting = False
        self._reaping: Reap | None = None
        self._last_beat = 0.0
        self._next_reap = 0.0
        self._grace_end = math.inf
        self._deadline = math.inf

    # -- what the shell reads ----------------------------------------------------------------

    @property
    def running(self) -> int:
        """How many handlers are running."""
        return self._slots[_Slot.RUNNING]

    @property
    def held(self) -> int:
        """How many leases the worker holds (claimed and not yet ended)."""
        return len(self._leases)

    @property
    def stopping(self) -> bool:
        """True once the worker stops claiming (stop requested, or a helper failed)."""
        return self.phase is not Phase.RUNNING

    def give_up(self, action: Action, now: float) -> bool:
        """Whether to abandon ``action`` rather than (re)try it now: claims, waits and reaps
        once the worker stops claiming; heartbeats once a helper failed; everything once the
        worker stopped or its stop deadline passed (Redis may be down for good)."""
        if isinstance(action, Claim | WaitForWork | Reap):
            return self.phase is not Phase.RUNNING
        if self.phase is Phase.STOPPED or (isinstance(action, Beat) and self.crashed):
            return True
        return self.phase is not Phase.RUNNING and now >= self._deadline

    def pause_s(self, delay: float, now: float) -> float:
        """How long to pause before the next try of a call: ``delay``, but never past the
        stop deadline."""
        if self.phase is Phase.RUNNING:
            return delay
        return max(0.0, min(delay, self._deadline - now))

    # -- events: claiming ----------------------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        """The worker starts: the first claim, and the first reap at a random point of the
        first interval (workers started together do not reap in step)."""
        self._last_beat = now
        self._next_reap = now + self._rng.uniform(0.0, REAP_INTERVAL_S)
        return self._after(now)

    def claimed(self, action: Claim, answer: Claimed | None, now: float) -> list[Action]:
        """A claim's answer (None: abandoned, its leases unknown; they expire)."""
        if action is self._claiming:
            self._claiming = None
        if answer is None:
            return self._after(now)
        actions: list[Action] = []
        fresh = []
        for job in answer.jobs:
            if job.token in self._leases:
                continue  # already held (never expected: a claim id is used once)
            lease = _Lease(JobContext(job, self.settings.worker_id, _granted_ms(job, answer)))
            self._add(lease)
            actions += self._supersede(lease)
            fresh.append(lease)
        actions += self._take(fresh, now)
        if not answer.jobs and self.phase is Phase.RUNNING:
            timeout = idle_wait_s(answer, self.settings.max_idle_s)
            if timeout > 0.001:
                self._waiting = True
                actions.append(WaitForWork(timeout))
        # The next claim waits for a runner to be idle or for room to free up (decided then,
        # and sized when sent): claiming again at once would ask only for what this answer
        # left free, in many small calls.
        return actions + self._after(now, answered=bool(answer.jobs))

    def waited(self, now: float) -> list[Action]:
        """The idle wait for work ended (work came, it timed out, it was ended or failed)."""
        self._waiting = False
        return self._after(now)

    def _add(self, lease: _Lease) -> None:
        self._leases[lease.token] = lease
        self._slots[lease.slot] += 1
        self._lengths[lease.context.lease_ms] += 1

    def _move(self, lease: _Lease, slot: _Slot) -> None:
        self._slots[lease.slot] -= 1
        self._slots[slot] += 1
        lease.slot = slot

    def _busy(self) -> int:
        """Runs handed to runners and not returned."""
        slots = self._slots
        return slots[_Slot.DISPATCHED] + slots[_Slot.RUNNING]

    def _supersede(self, lease: _Lease) -> list[Action]:
        """A job claimed again while an older lease of it is still here (its lease expired and
        this worker's own claim reaped it): that older lease is lost."""
        job_id = lease.context.job.id
        older = self._latest.get(job_id)
        self._latest[job_id] = lease
        if older is None or older.hold is not _Hold.HELD:
            return []  # an answer on its way about the older lease decides (and is logged)
        return self._lose(older)

    def _take(self, fresh: list[_Lease], now: float) -> list[Action]:
        """New leases: bad payloads failed at once, the rest queued for the runners (or, once
        the worker stops, handed back without running)."""
        actions: list[Action] = []
        unwanted = []
        for lease in fresh:
            bad = payload_outcome(lease.context.job)
            if bad is not None:
                self._move(lease, _Slot.NONE)
                actions.append(self._fail(lease, bad, "its payload could not be decoded"))
            elif self.phase is Phase.RUNNING:
                self._queued.append(lease)
            else:
                unwanted.append(lease)
        return actions + self._hand_back(unwanted, now)

    # -- events: running -----------------------------------------------------------------------

    def started(self, context: JobContext, now: float) -> list[Action]:
        """A runner is about to run ``context``'s handler. If the job may still run, the core
        marks it begun (``context.begun``); otherwise (its lease was lost or handed back
        meanwhile) the runner must skip it."""
        lease = self._own(context)
        if lease is None or lease.slot is not _Slot.DISPATCHED:
            return []
        if lease.hold is not _Hold.HELD or context.cancelled.is_set():
            self._move(lease, _Slot.NONE)
            self._settle(lease)
            return self._after(now)
        self._move(lease, _Slot.RUNNING)
        context.begun = True
        context.started = now
        if self.settings.time_limit_ms is not None:
            self._timed[lease.token] = lease
        return []

    def finished(self, context: JobContext, outcome: RunOutcome, now: float) -> list[Action]:
        """A handler returned, raised or was cancelled; ``outcome`` holds its result encoded
        already, or the error text (see :func:`~scheduler._worker_context.result_outcome`)."""
        lease = self._leases.get(context.job.token)
        if lease is None or lease.context is not context or lease.slot is not _Slot.RUNNING:
            return []
        self._move(lease, _Slot.RETURNED)
        context.finished = True
        if self._timed:
            self._timed.pop(lease.token, None)
        actions = self._report(lease, outcome)
        self._settle(lease)
        return actions + self._after(now)

    def _report(self, lease: _Lease, outcome: RunOutcome) -> list[Action]:
        if lease.hold is not _Hold.HELD:
            log_discarded(lease.context, lease.why)
            return []
        if isinstance(outcome, Succeeded):
            self._pending[lease.token] = (lease, outcome.result)
            return self._flush()
        if isinstance(outcome, Interrupted):
            outcome = Errored("the job's task was cancelled", retryable=True)
        return [self._fail(lease, outcome, "its failure is being reported")]

    # -- events: acknowledgements ----------------------------------------------------------------

    def completed(
        self, action: Complete, statuses: Sequence[ItemStatus] | None, retried: bool, now: float
    ) -> list[Action]:
        """A batch of completions was answered (None: abandoned at the stop deadline).
        ``retried``: it was repeated after a connection error (see :mod:`._worker_log`)."""
        if action is self._completing:
            self._completing = None
        self._acks.discard(action)
        contexts = [context for context, _ in action.items]
        if statuses is None:
            log_given_up(self.settings.worker_id, "completions", len(contexts))
        else:
            log_completions(contexts, statuses, retried)
        for context in contexts:
            self._end_context(context, "acknowledged")
        return self._flush() + self._after(now)

    def failed(
        self, action: Fail, answer: Failed | Exception | None, retried: bool, now: float
    ) -> list[Action]:
        """A failure was answered: the outcome, or the :class:`~scheduler.errors.JobError` it
        raised (the lease is no longer ours), or None (abandoned at the stop deadline)."""
        self._acks.discard(action)
        if answer is None:
            log_given_up(self.settings.worker_id, "a failure", 1)
        elif isinstance(answer, Failed):
            log_failed(action.context, answer, action.error)
        else:
            log_fail_refused(action.context, answer, action.error, retried)
        self._end_context(action.context, "acknowledged")
        return self._after(now)

    def released(
        self, action: Release, statuses: Sequence[ItemStatus] | None, retried: bool, now: float
    ) -> list[Action]:
        """A hand-back was answered (None: abandoned at the stop deadline)."""
        self._acks.discard(action)
        if statuses is None:
            log_given_up(self.settings.worker_id, "the hand-back", len(action.contexts))
        else:
            log_released(self.settings.worker_id, statuses, retried)
        for context in action.contexts:
            self._end_context(context, "handed back")
        return self._after(now)

    def _fail(self, lease: _Lease, outcome: Errored, why: str) -> Fail:
        action = Fail(lease.context, outcome.error, outcome.retryable)
        lease.hold = _Hold.ACKING
        lease.why = why
        self._acks.add(action)
        return action

    def _flush(self) -> list[Action]:
        """The next batch of results, unless one is on its way (they batch up meanwhile)."""
        if self._completing is not None or not self._pending:
            return []
        action = Complete(self._take_pending(ACK_BATCH))
        self._completing = action
        self._acks.add(action)
        return [action]

    def _take_pending(self, most: int) -> tuple[tuple[JobContext, Encoded], ...]:
        batch = list(itertools.islice(self._pending.values(), max(0, most)))
        for lease, _ in batch:
            del self._pending[lease.token]
            lease.hold = _Hold.ACKING
            lease.why = "its result is being sent"
        return tuple((lease.context, result) for lease, result in batch)

    # -- events: maintenance -------------------------------------------------------------------

    def tick(self, now: float) -> list[Action]:
        """Time passed: time limits, heartbeats, reaping and the stop's progress."""
        if self.phase is Phase.STOPPED:
            return []
        actions = self._enforce_time_limit(now)
        actions += self._beat(now)
        actions += self._reap(now)
        return actions + self._after(now)

    def beaten(self, action: Beat, answer: Heartbeat | None, now: float) -> list[Action]:
        """A heartbeat chunk was answered (None: abandoned). Each lease it names lost that is
        still held is cancelled; one whose acknowledgement is on its way is left to that
        answer (the completion may have ended the lease first: see the timeline)."""
        self._beats.discard(action)
        actions: list[Action] = []
        lost = set(answer.lost) if answer is not None else set()
        for context in action.contexts:
            lease = self._own(context)
            if context.job.id in lost and lease is not None and lease.hold is _Hold.HELD:
                actions += self._lose(lease)
        return actions + self._after(now)

    def reaped(self, action: Reap, answer: Reaped | None, now: float) -> list[Action]:
        """A reap call ended; the next is due about :data:`REAP_INTERVAL_S` later."""
        if action is self._reaping:
            self._reaping = None
        jitter = self._rng.uniform(-REAP_JITTER, REAP_JITTER)
        self._next_reap = now + REAP_INTERVAL_S * (1 + jitter)
        return self._after(now)

    def _enforce_time_limit(self, now: float) -> list[Action]:
        limit = self.settings.time_limit_ms
        actions: list[Action] = []
        while limit is not None and self._timed:
            lease = next(iter(self._timed.values()))
            if (now - lease.context.started) * 1000 < limit:
                break
            del self._timed[lease.token]
            if lease.hold is _Hold.HELD:
                lease.context.cancelled.set()
                timeout = Errored(f"TimeoutError: time limit of {limit} ms passed", retryable=True)
                actions.append(Cancel((lease.context,)))
                actions.append(self._fail(lease, timeout, "its time limit passed"))
        return actions

    def _beat(self, now: float) -> list[Action]:
        if self.crashed is not None or self._beats or not self._lengths:
            return []
        if now - self._last_beat < heartbeat_interval_s(min(self._lengths)):
            return []
        self._last_beat = now
        held = [lease.context for lease in self._leases.values() if lease.hold is not _Hold.ENDED]
        actions: list[Action] = []
        for chunk in _chunks(held):
            beat = Beat(tuple(chunk), started_report(chunk, now), self.settings.lease_ms)
            self._beats.add(beat)
            actions.append(beat)
        return actions

    def _reap(self, now: float) -> list[Action]:
        if self.phase is not Phase.RUNNING or self._reaping is not None or now < self._next_reap:
            return []
        self._reaping = Reap(REAP_LIMIT)
        return [self._reaping]

    # -- events: stopping ----------------------------------------------------------------------

    def stop_requested(self, now: float) -> list[Action]:
        """Stop: no more claims; jobs not begun are handed back at once, running ones get the
        grace period. A second request changes nothing."""
        if self.phase is not Phase.RUNNING:
            return []
        logger.info(
            "worker %s stopping: running jobs get %.1fs, then are handed back",
            self.settings.worker_id,
            self.settings.grace_s,
        )
        self.phase = Phase.STOPPING
        self._grace_end = now + self.settings.grace_s
        self._deadline = self._grace_end + HAND_BACK_S
        return self._stop_claiming(now) + self._after(now)

    def helper_failed(
        self, lane: Lane, action: Action | None, error: BaseException, now: float
    ) -> list[Action]:
        """A helper raised an unexpected error while doing ``action`` (None: outside any
        action). The first such error stops the worker at once (see the module docstring)."""
        first = self.crashed is None
        log_helper_failed(self.settings.worker_id, lane.value, error, first)
        actions = self._abandon(action, now)
        if first and self.phase is not Phase.STOPPED:
            self.crashed = error
            if self.phase is Phase.RUNNING:
                self.phase = Phase.STOPPING
            self._grace_end = now
            self._deadline = min(self._deadline, now + HAND_BACK_S)
            actions += self._stop_claiming(now)
        return actions + self._after(now)

    def _stop_claiming(self, now: float) -> list[Action]:
        actions: list[Action] = [EndWait()] if self._waiting else []
        unstarted = [lease for lease in self._queued if lease.slot is _Slot.QUEUED]
        unstarted += [lease for lease in self._leases.values() if lease.slot is _Slot.DISPATCHED]
        self._queued.clear()
        return actions + self._hand_back(unstarted, now)

    def _abandon(self, action: Action | None, now: float) -> list[Action]:
        """Account for an action whose helper failed: its leases are handed back if they may
        be (a completion or failure of unknown outcome), else left to expire."""
        if action is self._claiming:
            self._claiming = None
        if action is self._reaping:
            self._reaping = None
        if isinstance(action, WaitForWork):
            self._waiting = False
        self._beats.discard(action)
        if action is None or action not in self._acks:
            return []
        self._acks.discard(action)
        if isinstance(action, Release):
            for context in action.contexts:
                self._end_context(context, "its hand-back failed")
            return []
        if action is self._completing:
            self._completing = None
        return self._hand_back(self._unanswered(action), now)

    def _unanswered(self, action: Action) -> list[_Lease]:
        """The leases of a completion or failure whose call failed: held again, since nothing
        says it was recorded (a hand-back of a lease that did end changes nothing)."""
        if isinstance(action, Complete):
            contexts = [context for context, _ in action.items]
        elif isinstance(action, Fail):
            contexts = [action.context]
        else:
            return []
        leases = [lease for lease in map(self._own, contexts) if lease is not None]
        for lease in leases:
            if lease.hold is _Hold.ACKING:
                lease.hold = _Hold.HELD
        return leases

    def _hand_back(self, leases: Sequence[_Lease], now: float) -> list[Action]:
        """Release the leases still held (in chunks of 1000), with the ``started`` report of
        those whose handler began; cancel the ones a runner has."""
        held = [lease for lease in leases if lease.hold is _Hold.HELD]
        for lease in held:
            lease.context.cancelled.set()
            lease.hold = _Hold.ACKING
            lease.why = "the lease was handed back"
            self._pending.pop(lease.token, None)
            if lease.slot is _Slot.QUEUED:
                self._move(lease, _Slot.NONE)
        actions: list[Action] = []
        busy = tuple(lease.context for lease in held if lease.slot in _BUSY)
        if busy:
            actions.append(Cancel(busy))
        for chunk in _chunks([lease.context for lease in held]):
            release = Release(tuple(chunk), started_report(chunk, now))
            self._acks.add(release)
            actions.append(release)
        return actions

    def _after(self, now: float, answered: bool = False) -> list[Action]:
        """After any event: runs for free runners, a claim if there is room (after a claim's
        answer, only for an idle runner), the stop's progress. (On the hot path: each part is
        skipped when it has nothing to do.)"""
        actions = self._dispatch() if self._queued else []
        if self.phase is not Phase.RUNNING:
            return actions + self._advance(now)
        if self._claiming is not None or self._waiting:
            return actions
        if not (answered and self._busy() >= self.settings.concurrency):
            actions += self._fill()
        return actions

    def _dispatch(self) -> list[Action]:
        actions: list[Action] = []
        while self._queued and self._busy() < self.settings.concurrency:
            lease = self._queued.popleft()
            if lease.slot is not _Slot.QUEUED:
                continue  # lost or handed back while it waited
            self._move(lease, _Slot.DISPATCHED)
            actions.append(Run(lease.context))
        return actions

    def _fill(self) -> list[Action]:
        busy = self._busy()
        free = self.capacity - busy - self._slots[_Slot.QUEUED]
        if free < self.refill and not (free > 0 and busy < self.settings.concurrency):
            return []
        count = self._claim_size()
        if count <= 0:
            return []
        self._claiming = Claim(count, self._new_claim_id(), self.settings.lease_ms)
        return [self._claiming]

    def _claim_size(self) -> int:
        """How many jobs a claim sent now asks for: the free room, at most 1000. Leases whose
        acknowledgement is on its way are held beside the room, up to :data:`ACK_BATCH` (or
        the room, if larger): acknowledgements go on while claims do, but acknowledgements
        that lag far (a slow Redis) hold claims back."""
        free = self.capacity - self._busy() - self._slots[_Slot.QUEUED]
        acking = max(self.capacity, ACK_BATCH)
        return min(free, MAX_BATCH, self.capacity + acking - len(self._leases))

    def refresh(self, action: ActionT, now: float) -> ActionT:
        """``action`` as it should be sent now, asked by the shell right before its first try
        (report the answer about the action returned): a claim asks for the room freed since it
        was decided, a batch of completions takes the results finished since. So calls come in
        larger batches, whatever the delay between deciding and sending."""
        if isinstance(action, Claim) and action is self._claiming:
            count = max(action.count, self._claim_size())
            if count != action.count:
                self._claiming = Claim(count, action.claim_id, action.lease_ms)
            return cast(ActionT, self._claiming)
        if isinstance(action, Complete) and action is self._completing and self._pending:
            more = self._take_pending(ACK_BATCH - len(action.items))
            if more:
                self._acks.discard(action)
                self._completing = Complete(action.items + more)
                self._acks.add(self._completing)
            return cast(ActionT, self._completing)
        return action

    def _advance(self, now: float) -> list[Action]:
        actions: list[Action] = []
        if self.phase is Phase.STOPPING and (self._busy() == 0 or now >= self._grace_end):
            self.phase = Phase.DRAINING
            running = [lease for lease in self._leases.values() if lease.slot in _BUSY]
            actions += self._hand_back(running, now)
        if self.phase is Phase.DRAINING and (self._quiet() or now >= self._deadline):
            actions += self._finish()
        return actions

    def _quiet(self) -> bool:
        """Nothing left to send or to wait for: every lease ended, no call on its way."""
        return not (self._lengths or self._acks or self._claiming or self._waiting)

    def _finish(self) -> list[Action]:
        self.phase = Phase.STOPPED
        left = [lease for lease in self._leases.values() if lease.hold is not _Hold.ENDED]
        if left:
            log_given_up(self.settings.worker_id, "acknowledging or handing back", len(left))
        busy = tuple(lease.context for lease in self._leases.values() if lease.slot in _BUSY)
        for context in busy:
            context.cancelled.set()
        actions: list[Action] = [Cancel(busy)] if busy else []
        return actions + [Exit(lane) for lane in (Lane.CLAIM, Lane.ACK, Lane.BEAT, Lane.RUN)]

    # -- the lease records ---------------------------------------------------------------------

    def _own(self, context: JobContext) -> _Lease | None:
        lease = self._leases.get(context.job.token)
        return lease if lease is not None and lease.context is context else None

    def _lose(self, lease: _Lease) -> list[Action]:
        context = lease.context
        context.cancelled.set()
        log_lost(context)
        busy = lease.slot in _BUSY
        self._end(lease, "the lease was lost")
        return [Cancel((context,))] if busy else []

    def _end_context(self, context: JobContext, why: str) -> None:
        lease = self._own(context)
        if lease is not None:
            self._end(lease, why)

    def _end(self, lease: _Lease, why: str) -> None:
        """The lease is no longer ours: nothing more is sent about it; its record goes once
        no runner has it."""
        if lease.hold is _Hold.ENDED:
            return
        if lease.hold is _Hold.HELD:
            lease.why = why
        lease.hold = _Hold.ENDED
        length = lease.context.lease_ms
        self._lengths[length] -= 1
        if self._lengths[length] <= 0:
            del self._lengths[length]
        self._pending.pop(lease.token, None)
        if lease.slot is _Slot.QUEUED:
            self._move(lease, _Slot.NONE)
        self._settle(lease)

    def _settle(self, lease: _Lease) -> None:
        if lease.hold is not _Hold.ENDED or lease.slot not in _UNHELD:
            return
        if self._leases.pop(lease.token, None) is not None:
            self._slots[lease.slot] -= 1
        job_id = lease.context.job.id
        if self._latest.get(job_id) is lease:
            del self._latest[job_id]


__all__ = [
    "ACK_BATCH",
    "HAND_BACK_S",
    "REAP_INTERVAL_S",
    "REAP_JITTER",
    "REAP_LIMIT",
    "TICK_S",
    "WAIT_MARGIN_S",
    "Phase",
    "WorkerCore",
    "blocking_connection_kwargs",
    "heartbeat_interval_s",
    "idle_wait_s",
    "retry_delays",
    "started_report",
]
