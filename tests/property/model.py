"""A pure-Python reference model of one queue, for the model-based property test.

The model implements the semantics the scripts publish in their headers (``lua/*.lua`` and
``lua/lib/*.lua``) on a virtual clock: no Redis, no I/O. Each state-changing method takes the
arguments of the matching :class:`scheduler.Queue` call and returns the answer the queue must
give, in the client's own types, so a test compares the two with ``==``.

Two things are random in the scripts and cannot be predicted: the nonce of a lease token and
the jitter of a retry delay. The caller reads them from the real reply (and checks them: the
token's shape and uniqueness, the delay's bounds) and hands them in; the model adopts them.

Where the scripts keep jobs in ZSETs, the model orders them the way Redis does, by score and
then by member bytes:

* waiting (``ready``): priority, highest first, then FIFO by when the job became ready, except
  that a job handed back (``release``) goes before every other job of its priority (hand-backs
  among themselves: by id, as their scores tie);
* delayed: run-at time; active: lease deadline;
* completed, dead, cancelled: when the record expires (finished time + its retention);
* claim records: the last lease deadline the claim handed out, after which it is forgotten.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scheduler import (
    ActiveJob,
    Claimed,
    Enqueued,
    Failed,
    Heartbeat,
    ItemStatus,
    Job,
    JobInfo,
    JobOptions,
    Outcome,
    QueueStats,
    Reaped,
    Retention,
    State,
    Status,
)
from scheduler._policy import delay_bounds_ms

SET_STATES: tuple[State, ...] = (
    State.WAITING,
    State.DELAYED,
    State.ACTIVE,
    State.COMPLETED,
    State.DEAD,
    State.CANCELLED,
)
"""The six states, each with its own ZSET, in the order ``stats`` counts them."""

WAKE_MAX = 64
"""The most wake-up tokens the wake LIST holds (lib/ready.lua)."""

FINISHED_STATES: tuple[State, ...] = (State.COMPLETED, State.DEAD, State.CANCELLED)
"""The states whose records expire and are trimmed."""

EVENT_STATES: dict[str, tuple[State, ...]] = {
    "deadline": (State.ACTIVE,),
    "run_at": (State.DELAYED,),
    "expiry": FINISHED_STATES,
}
"""The states whose ZSET scores are the times of each kind of event (see next_event_ms)."""

JobRequest = tuple[str, Any, JobOptions]
"""One job to enqueue: its id, payload and options."""

LeaseRef = tuple[str, str]
"""A lease as (job id, token)."""


@dataclass
class ModelJob:
    """One job: the fields of its record (lib/job.lua), its payload, result and error, and its
    place in its state's ordering: ``seq`` while waiting (0 for a job handed back, so it goes
    first), ``expires_ms`` once finished."""

    id: str
    payload: Any
    options: JobOptions
    state: State
    created_ms: int
    ready_ms: int
    attempt: int = 0
    token: str = ""
    outcome: Outcome = Outcome.NONE
    deadline_ms: int = 0
    worker: str = ""
    started_ms: int = 0
    finished_ms: int = 0
    seq: int = 0
    expires_ms: int = 0
    result: Any = None
    error: str | None = None

    def order_key(self) -> tuple[int, int, str]:
        """Where the job sits in its state's ZSET: by score, then by id (Redis orders equal
        scores by member). A waiting job's score is its priority band, then its FIFO seq."""
        if self.state is State.WAITING:
            return (-self.options.priority, self.seq, self.id)
        return (self.score(), 0, self.id)

    def score(self) -> int:
        """The job's score in its ZSET, for every state but waiting (whose score encodes the
        FIFO counter of the real queue, which the model does not mirror)."""
        if self.state is State.DELAYED:
            return self.ready_ms
        if self.state is State.ACTIVE:
            return self.deadline_ms
        return self.expires_ms


@dataclass
class ClaimRecord:
    """What one claim id leased, remembered for repeated calls until ``forget_at_ms``."""

    leases: list[LeaseRef]
    forget_at_ms: int


@dataclass(frozen=True)
class FailAnswer:
    """The model's answer to ``fail``: what the client returns (a :class:`Failed`, or the
    status it raises as an error), and the bounds the drawn retry delay must lie in when the
    job's own backoff decided it (None otherwise)."""

    answer: Failed | Status
    delay_bounds: tuple[int, int] | None = None


CancelAnswer = tuple[Status, State | None]
"""The status of a cancel, and the state a ``bad_state`` reply names (None otherwise)."""


def record_options(options: JobOptions) -> JobOptions:
    """The options a job's record keeps, as ``inspect`` returns them: no delay, and the
    jitter rounded to per mille."""
    return JobOptions(
        priority=options.priority,
        max_attempts=options.max_attempts,
        lease_ms=options.lease_ms,
        backoff_ms=options.backoff_ms,
        backoff_max_ms=options.backoff_max_ms,
        jitter=round(options.jitter * 1000) / 1000,
        keep_result_ms=options.keep_result_ms,
        keep_dead_ms=options.keep_dead_ms,
    )


@dataclass
class QueueModel:
    """The reference model of one queue named ``queue``, its clock at ``now``.

    ``removed`` names each job whose record is gone (``"purged"`` or ``"trimmed"``), so a test
    can tell a lost job from one that left on purpose. ``wake`` is the length of the wake LIST:
    each call that makes n jobs ready pushes n tokens, and the list keeps at most
    :data:`WAKE_MAX`.
    """

    queue: str
    now: int
    retention: Retention
    jobs: dict[str, ModelJob] = field(default_factory=dict)
    claims: dict[str, ClaimRecord] = field(default_factory=dict)
    removed: dict[str, str] = field(default_factory=dict)
    wake: int = 0
    next_seq: int = 1

    # -- clock and views -------------------------------------------------------------------

    def advance(self, ms: int) -> None:
        """Move the virtual clock ``ms`` ahead."""
        self.now += ms

    def next_event_ms(self, kind: str) -> int | None:
        """The earliest time after now at which something of ``kind`` falls due: a lease
        ``"deadline"``, a delayed job's ``"run_at"`` time, a finished record's ``"expiry"``, or
        a claim record's ``"forget"`` time. None when nothing of that kind lies ahead."""
        if kind == "forget":
            times = [claim.forget_at_ms for claim in self.claims.values()]
        else:
            states = EVENT_STATES[kind]
            times = [job.score() for job in self.jobs.values() if job.state in states]
        ahead = [t for t in times if t > self.now]
        return min(ahead) if ahead else None

    def take_wake_token(self) -> bool:
        """An idle worker pops one wake-up token; False when there was none."""
        if self.wake == 0:
            return False
        self.wake -= 1
        return True

    def ordered(self, state: State) -> list[str]:
        """The ids of the jobs in ``state``, in their ZSET's order."""
        members = [job for job in self.jobs.values() if job.state is state]
        return [job.id for job in sorted(members, key=ModelJob.order_key)]

    def scored(self, state: State) -> list[tuple[str, int]]:
        """(id, score) of the jobs in ``state`` (not waiting), in their ZSET's order."""
        return [(job_id, self.jobs[job_id].score()) for job_id in self.ordered(state)]

    def claim_records(self) -> dict[str, tuple[list[LeaseRef], int]]:
        """Every remembered claim id: its leases and when it is forgotten."""
        return {cid: (list(c.leases), c.forget_at_ms) for cid, c in self.claims.items()}

    def lease_current(self, job_id: str, token: str) -> bool:
        """The lease rule: the job is active, the token matches, and now < deadline."""
        job = self.jobs.get(job_id)
        return (
            job is not None
            and job.state is State.ACTIVE
            and job.token == token
            and self.now < job.deadline_ms
        )

    def inspect(self, job_id: str) -> JobInfo | None:
        """Everything ``Queue.inspect`` must say about a job; None when there is no record."""
        job = self.jobs.get(job_id)
        if job is None:
            return None
        return JobInfo(
            queue=self.queue,
            id=job.id,
            state=job.state,
            attempt=job.attempt,
            max_attempts=job.options.max_attempts,
            priority=job.options.priority,
            token=job.token,
            outcome=job.outcome,
            worker=job.worker,
            deadline_ms=job.deadline_ms,
            created_ms=job.created_ms,
            ready_ms=job.ready_ms,
            started_ms=job.started_ms,
            finished_ms=job.finished_ms,
            options=job.options,
            payload=job.payload,
            result=job.result,
            error=job.error,
            now_ms=self.now,
        )

    def stats(self, active_limit: int = 100) -> QueueStats:
        """The counts per state, when the longest-waiting job became ready (its ``ready_ms``;
        None when none waits), and the first ``active_limit`` active jobs by deadline."""
        counts = {state: len(self.ordered(state)) for state in SET_STATES}
        waiting = [self.jobs[i].ready_ms for i in self.ordered(State.WAITING)]
        active = [self.jobs[i] for i in self.ordered(State.ACTIVE)[:active_limit]]
        return QueueStats(
            self.queue,
            self.now,
            counts,
            min(waiting) if waiting else None,
            [ActiveJob(j.id, j.worker, j.attempt, j.deadline_ms, j.started_ms) for j in active],
        )

    # -- enqueue ---------------------------------------------------------------------------

    def enqueue_many(self, requests: Sequence[JobRequest]) -> list[Enqueued]:
        """enqueue.lua: create each job (waiting, or delayed until its run-at time), or answer
        a duplicate with the existing job's state, changing nothing about it."""
        answers = []
        for job_id, payload, options in requests:
            existing = self.jobs.get(job_id)
            if existing is not None:
                answers.append(Enqueued(job_id, False, existing.state))
                continue
            run_at = self.now + options.delay_ms
            if options.run_at_ms is not None:
                run_at = options.run_at_ms
            job = ModelJob(
                id=job_id,
                payload=payload,
                options=record_options(options),
                state=State.DELAYED if run_at > self.now else State.WAITING,
                created_ms=self.now,
                ready_ms=max(self.now, run_at),
            )
            self.jobs[job_id] = job
            self.removed.pop(job_id, None)
            if job.state is State.WAITING:
                self._make_ready(job)
            answers.append(Enqueued(job_id, True, job.state))
        self._signal(sum(a.created and a.state is State.WAITING for a in answers))
        return answers

    # -- leases ----------------------------------------------------------------------------

    def claim(
        self,
        worker: str,
        claim_id: str,
        count: int,
        maintenance: int,
        tokens: Mapping[str, str],
    ) -> Claimed:
        """claim.lua. A remembered claim id answers with its leases that are still current and
        leases nothing. Otherwise: promote due delayed jobs, reap expired leases and forget old
        claims (each up to ``maintenance``), then lease the first ``count`` waiting jobs; when
        there is none, the answer names the earliest run-at time or lease deadline.

        ``tokens`` maps job id to the token the real reply gave it; a job the model leases but
        the reply does not name gets the token ``"<missing>"``.
        """
        record = self.claims.get(claim_id)
        if record is not None:
            current = [
                self._leased(job_id)
                for job_id, token in record.leases
                if self.lease_current(job_id, token)
            ]
            return Claimed(current, self.now, repeated=True)
        if maintenance > 0:
            self._promote_due(maintenance)
            self._reap_expired(maintenance)
            self._forget_claims(maintenance)
        leased = [
            self._lease(job_id, worker, tokens.get(job_id, "<missing>"))
            for job_id in self.ordered(State.WAITING)[:count]
        ]
        if not leased:
            return Claimed([], self.now, next_ms=self._next_event_ms())
        self.claims[claim_id] = ClaimRecord(
            [(job.id, job.token) for job in leased],
            max([self.now, *(job.deadline_ms for job in leased)]),
        )
        return Claimed(leased, self.now)

    def complete_many(self, items: Sequence[tuple[str, str, Any]]) -> list[ItemStatus]:
        """complete.lua: each (id, token, result) is accepted only with the current lease;
        the token that completed the job gets ``duplicate``; then completed records are
        trimmed."""
        answers = []
        for job_id, token, result in items:
            job = self.jobs.get(job_id)
            if job is None:
                status = Status.NOT_FOUND
            elif self.lease_current(job_id, token):
                job.result = result
                job.outcome = Outcome.COMPLETED
                self._finish(job, State.COMPLETED, job.options.keep_result_ms)
                status = Status.OK
            elif job.token == token and job.outcome is Outcome.COMPLETED:
                status = Status.DUPLICATE
            else:
                status = Status.LEASE_LOST
            answers.append(ItemStatus(job_id, status))
        self._trim(State.COMPLETED, self.retention.max_completed, self.retention.trim_batch)
        return answers

    def fail(
        self,
        job_id: str,
        token: str,
        error: str,
        *,
        retryable: bool,
        delay_ms: int | None,
        drawn_delay_ms: int,
    ) -> FailAnswer:
        """fail.lua. With the current lease: dead when non-retryable or attempts are used up,
        else retried after ``delay_ms`` or the job's backoff (``drawn_delay_ms``, read from the
        reply), delayed when that is over 0. A repeat with the same token answers the first
        outcome; then dead records are trimmed (on every accepted failure)."""
        job = self.jobs.get(job_id)
        if job is None:
            return FailAnswer(Status.NOT_FOUND)
        if not self.lease_current(job_id, token):
            if job.token == token and job.outcome in (Outcome.RETRY, Outcome.DEAD):
                run_at = job.ready_ms if job.outcome is Outcome.RETRY else 0
                return FailAnswer(Failed(job.outcome, run_at, repeated=True))
            return FailAnswer(Status.LEASE_LOST)
        job.error = error
        if not retryable or job.attempt >= job.options.max_attempts:
            job.outcome = Outcome.DEAD
            self._finish(job, State.DEAD, job.options.keep_dead_ms)
            self._trim_dead()
            return FailAnswer(Failed(Outcome.DEAD, 0))
        bounds = None
        if delay_ms is None:
            bounds = delay_bounds_ms(job.options, job.attempt)
            delay_ms = drawn_delay_ms
        job.outcome = Outcome.RETRY
        job.deadline_ms = 0
        job.ready_ms = self.now + delay_ms
        if delay_ms > 0:
            job.state = State.DELAYED
        else:
            self._make_ready(job)
            self._signal(1)
        self._trim_dead()
        return FailAnswer(Failed(Outcome.RETRY, job.ready_ms), bounds)

    def heartbeat(self, leases: Sequence[LeaseRef]) -> Heartbeat:
        """heartbeat.lua: each current lease runs its job's ``lease_ms`` from now; the others
        are named lost with deadline 0 and left alone."""
        lost, deadlines = [], []
        for job_id, token in leases:
            if self.lease_current(job_id, token):
                job = self.jobs[job_id]
                job.deadline_ms = self.now + job.options.lease_ms
                deadlines.append(job.deadline_ms)
            else:
                lost.append(job_id)
                deadlines.append(0)
        return Heartbeat(lost, deadlines, self.now)

    def release(self, leases: Sequence[LeaseRef]) -> list[ItemStatus]:
        """release.lua: each current lease is handed back: the job waits again at the front
        of its priority, its attempt given back, outcome returned. The token that handed it
        back gets ``duplicate``."""
        answers, released = [], []
        for job_id, token in leases:
            job = self.jobs.get(job_id)
            if job is None:
                status = Status.NOT_FOUND
            elif self.lease_current(job_id, token):
                job.attempt -= 1
                job.outcome = Outcome.RETURNED
                job.deadline_ms = 0
                job.ready_ms = self.now
                job.state = State.WAITING
                job.seq = 0
                released.append(job_id)
                status = Status.OK
            elif job.token == token and job.outcome is Outcome.RETURNED:
                status = Status.DUPLICATE
            else:
                status = Status.LEASE_LOST
            answers.append(ItemStatus(job_id, status))
        self._signal(len(released))
        return answers

    # -- maintenance and administration ----------------------------------------------------

    def reap(self, limit: int) -> Reaped:
        """reap.lua: promote, expire leases, trim each finished set and forget old claims,
        each step bounded by ``limit``."""
        promoted = self._promote_due(limit)
        requeued, dead = self._reap_expired(limit)
        r = self.retention
        trimmed = (
            self._trim(State.COMPLETED, r.max_completed, limit)
            + self._trim(State.DEAD, r.max_dead, limit)
            + self._trim(State.CANCELLED, r.max_cancelled, limit)
        )
        self._forget_claims(limit)
        return Reaped(promoted, requeued, dead, trimmed)

    def cancel(self, job_id: str) -> CancelAnswer:
        """cancel.lua: only a waiting or delayed job is cancelled; then cancelled records are
        trimmed."""
        job = self.jobs.get(job_id)
        if job is None:
            return (Status.NOT_FOUND, None)
        if job.state is State.CANCELLED:
            return (Status.DUPLICATE, None)
        if job.state not in (State.WAITING, State.DELAYED):
            return (Status.BAD_STATE, job.state)
        self._finish(job, State.CANCELLED, job.options.keep_dead_ms)
        self._trim(State.CANCELLED, self.retention.max_cancelled, self.retention.trim_batch)
        return (Status.OK, None)

    def requeue(self, ids: Sequence[str], limit: int) -> list[ItemStatus]:
        """requeue.lua: each dead job (``ids``, or the first ``limit`` of the dead set) goes
        back to waiting with attempt 0 and no outcome; its token and error stay."""
        targets = list(ids) or self.ordered(State.DEAD)[:limit]
        answers = []
        for job_id in targets:
            job = self.jobs.get(job_id)
            if job is None:
                status = Status.NOT_FOUND
            elif job.state is not State.DEAD:
                status = Status.BAD_STATE
            else:
                job.attempt = 0
                job.outcome = Outcome.NONE
                job.finished_ms = 0
                job.ready_ms = self.now
                self._make_ready(job)
                status = Status.OK
            answers.append(ItemStatus(job_id, status))
        self._signal(sum(a.status is Status.OK for a in answers))
        return answers

    def purge(self, state: State, ids: Sequence[str], limit: int) -> list[ItemStatus]:
        """purge.lua: delete the jobs of ``ids`` that are in ``state`` (or the first ``limit``
        of that state's set) for good. ``ids`` must hold no repeats."""
        targets = list(ids) or self.ordered(state)[:limit]
        answers = []
        for job_id in targets:
            job = self.jobs.get(job_id)
            if job is None:
                status = Status.NOT_FOUND
            elif job.state is not state:
                status = Status.BAD_STATE
            else:
                status = Status.OK
            answers.append(ItemStatus(job_id, status))
        self._delete([a.id for a in answers if a.status is Status.OK], "purged")
        return answers

    # -- helpers shared by the scripts (lua/lib) -------------------------------------------

    def _make_ready(self, job: ModelJob) -> None:
        """ready_push: the job waits, behind every job that became ready before it."""
        job.state = State.WAITING
        job.seq = self.next_seq
        self.next_seq += 1

    def _signal(self, made_ready: int) -> None:
        """ready_push's wake signal: a token per job made ready, at most WAKE_MAX kept."""
        self.wake = min(WAKE_MAX, self.wake + made_ready)

    def _next_event_ms(self) -> int | None:
        """The earliest run-at time of a delayed job or deadline of a lease, if any."""
        times = [
            job.score() for job in self.jobs.values() if job.state in (State.DELAYED, State.ACTIVE)
        ]
        return min(times) if times else None

    def _leased(self, job_id: str) -> Job:
        """The lease of a job as the claim reply gives it."""
        job = self.jobs[job_id]
        return Job(self.queue, job.id, job.payload, job.attempt, job.token, job.deadline_ms)

    def _lease(self, job_id: str, worker: str, token: str) -> Job:
        """Lease a waiting job to ``worker`` with ``token`` for its own ``lease_ms``."""
        job = self.jobs[job_id]
        job.state = State.ACTIVE
        job.attempt += 1
        job.token = token
        job.outcome = Outcome.RUNNING
        job.deadline_ms = self.now + job.options.lease_ms
        job.worker = worker
        job.started_ms = self.now
        return self._leased(job_id)

    def _finish(self, job: ModelJob, state: State, keep_ms: int) -> None:
        """finish_job: the job leaves for good; its record expires ``keep_ms`` from now."""
        job.state = state
        job.deadline_ms = 0
        job.finished_ms = self.now
        job.expires_ms = self.now + keep_ms

    def _promote_due(self, limit: int) -> int:
        """promote_due: the first ``limit`` delayed jobs whose run-at time has come, by run-at
        time, become waiting; their ``ready_ms`` becomes now, when they entered the ready set."""
        due = [i for i in self.ordered(State.DELAYED) if self.jobs[i].ready_ms <= self.now]
        for job_id in due[:limit]:
            self.jobs[job_id].ready_ms = self.now
            self._make_ready(self.jobs[job_id])
        self._signal(len(due[:limit]))
        return len(due[:limit])

    def _reap_expired(self, limit: int) -> tuple[int, int]:
        """reap_expired: the first ``limit`` leases with deadline <= now end, by deadline. A
        job with attempts left waits again (outcome expired); one without goes dead."""
        expired = [i for i in self.ordered(State.ACTIVE) if self.jobs[i].deadline_ms <= self.now]
        requeued = dead = 0
        for job_id in expired[:limit]:
            job = self.jobs[job_id]
            if job.attempt >= job.options.max_attempts:
                job.outcome = Outcome.DEAD
                job.error = (
                    f"lease expired on attempt {job.attempt} of {job.options.max_attempts}"
                    f" (worker {job.worker})"
                )
                self._finish(job, State.DEAD, job.options.keep_dead_ms)
                dead += 1
            else:
                job.outcome = Outcome.EXPIRED
                job.deadline_ms = 0
                job.ready_ms = self.now
                self._make_ready(job)
                requeued += 1
        self._signal(requeued)
        return requeued, dead

    def _forget_claims(self, limit: int) -> None:
        """forget_claims: drop the first ``limit`` claim records whose time has come."""
        stale = sorted(
            (c.forget_at_ms, cid) for cid, c in self.claims.items() if c.forget_at_ms <= self.now
        )
        for _, claim_id in stale[:limit]:
            del self.claims[claim_id]

    def _trim_dead(self) -> None:
        """The trim every accepted failure runs on the dead set."""
        self._trim(State.DEAD, self.retention.max_dead, self.retention.trim_batch)

    def _trim(self, state: State, max_count: int, limit: int) -> int:
        """trim_finished: delete up to ``limit`` expired records of ``state``, oldest first,
        then up to ``limit`` more while the set holds over ``max_count``."""
        if limit <= 0:
            return 0
        ordered = self.ordered(state)
        victims = [i for i in ordered if self.jobs[i].expires_ms <= self.now][:limit]
        excess = len(ordered) - len(victims) - max_count
        if excess > 0:
            victims += ordered[len(victims) : len(victims) + min(excess, limit)]
        self._delete(victims, "trimmed")
        return len(victims)

    def _delete(self, ids: Iterable[str], reason: str) -> None:
        """delete_jobs: every trace of the jobs goes; ``removed`` says why."""
        for job_id in ids:
            del self.jobs[job_id]
            self.removed[job_id] = reason
