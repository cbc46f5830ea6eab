"""A pure-Python reference model of one queue, for the model-based property test.

The model implements the semantics the scripts publish in their headers (``lua/*.lua`` and
``lua/lib/*.lua``) on a virtual clock: no Redis, no I/O. Each state-changing method takes the
arguments of the matching :class:`scheduler.Queue` call and returns the answer the queue must
give, in the client's own types, so a test compares the two with ``==``.

One thing is random in the scripts and cannot be predicted: the nonce of a lease token. The
caller reads it from the real reply (and checks it: its shape and uniqueness) and hands it in;
the model adopts it. The jitter of a retry delay is drawn from the lease token, so the model
computes it (``scheduler._policy.retry_delay_ms``).

**What the model keeps.** Per job, the fields of its record (lib/job.lua ``JOB_FIELDS``), its
payload, result and error, and where it sits. The ZSETs are not kept as such: each job's
membership and score follow from its fields (:meth:`ModelJob.part`, :meth:`ModelJob.score`),
ordered the way Redis orders them, by score, then by member bytes:

* ``ready``: ``(1000 - priority) * 2^42 + seq``, seq from the queue's FIFO counter (0 for a job
  handed back, which goes first in its priority);
* ``delayed``: run-at time; ``active``: lease deadline; ``completed``, ``dead``, ``cancelled``:
  when the record expires (finished time + its retention);
* ``stubs``: ``finished_ms + min(keep, window)`` (lib/trim.lua); ``quarantine``: when it was set
  aside.

The ``running`` ZSET is kept as it is (id -> score), since an entry can outlive what it stands
for: a record of an older version written over a started job drops started_ms, and its entry
stays behind until ``tidy_running`` (reap) drops it. So do the ``unreadable`` ZSET (newer
records met, by when), the request records and the wake LIST's length.

**Unreadable records.** A record planted over a job (:meth:`plant_unreadable`) stays where the
job was; the walks that meet it (claim's ready head, promote_due, expire_leases, trim_finished,
trim_stubs, requeue/purge by limit) set it aside: a corrupt one moves to the quarantine, a
newer one stays and is noted in ``unreadable``. The model keeps the job's last known fields,
which give its place, and the stored bytes.

**Where the model follows the scripts, not their headers.** A few scripts do not do what
their headers say (test_regressions.py states each as an xfail test): the model does what the
scripts do, so that the machine keeps proving everything else. Those places: a walk reads the
first ``count`` / ``limit`` ids, unreadable ones included (a newer record at the head of a set
takes a place in every call); ``trimmed`` counts every record a trim met; a stub answers a
repeated fail with run_at 0; an empty claim's ``next_ms`` is the least score of the delayed
and active sets, whatever is there.

**Stages and plans.** A script decides everything a stage does from the state at the start of
that stage, then writes. Where one stage holds several walks (claim's maintenance; reap's
promote and expire, then its trims), the walks touch disjoint sets, except that trim_finished
makes stubs that trim_stubs of the same stage must not see (the model runs trim_stubs first),
and that the same stage of reap forgets old ``unreadable`` entries that a trim may note again
(removals are applied before sets: the model forgets first).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    Unreadable,
    UnreadableRecord,
)
from scheduler._codec import decode
from scheduler._policy import retry_delay_ms
from scheduler.errors import PayloadError

from . import records

SET_STATES: tuple[State, ...] = (
    State.WAITING,
    State.DELAYED,
    State.ACTIVE,
    State.COMPLETED,
    State.DEAD,
    State.CANCELLED,
)
"""The six states, each with its own ZSET, in the order ``stats`` counts them."""

SET_PARTS: dict[State, str] = {
    State.WAITING: "ready",
    State.DELAYED: "delayed",
    State.ACTIVE: "active",
    State.COMPLETED: "completed",
    State.DEAD: "dead",
    State.CANCELLED: "cancelled",
}
"""The ZSET key part that holds the jobs of each state."""

HOLDING_PARTS: tuple[str, ...] = (*SET_PARTS.values(), "stubs", "quarantine")
"""The ZSETs of which every record's id is in exactly one."""

FINISHED_STATES: tuple[State, ...] = (State.COMPLETED, State.DEAD, State.CANCELLED)
"""The states whose records expire and are trimmed."""

WAKE_MAX = 64
"""The most wake-up tokens the wake LIST holds (lib/ready.lua)."""

SEQ_SPAN = 2**42
"""The span of FIFO numbers in one priority band of the ready ZSET (lib/ready.lua)."""

UNREADABLE_MEMORY_MS = 600_000
"""How long stats counts a newer record met, and reap keeps it noted (lib/records.lua)."""

STATS_BANDS, STATS_FRONT, STATS_NEXT = 64, 16, 4
"""stats.lua: the priority bands it visits, the hand-backs it looks at in each, and the jobs
after them among which it takes the first readable one."""

JobRow = tuple[str, bytes, JobOptions]
"""One job to enqueue: its id, encoded payload and options."""

LeaseRef = tuple[str, str]
"""A lease as (job id, token)."""

CancelAnswer = tuple[Status, State | None]
"""The status of a cancel, and the state a ``bad_state`` reply names (None otherwise)."""

Inspected = JobInfo | UnreadableRecord
"""What inspect gives for a stored record: the job, or what is stored when it is unreadable."""

RECORD_NUMBERS: tuple[str, ...] = (
    *("attempt", "max_attempts", "priority", "lease_ms", "backoff_ms", "backoff_max_ms"),
    *("jitter_pm", "keep_result_ms", "keep_dead_ms", "token", "deadline_ms", "worker"),
    *("created_ms", "ready_ms", "leased_ms", "started_ms", "finished_ms", "payload_bytes"),
)
"""The fields of a job record besides its state and outcome (lib/job.lua JOB_FIELDS)."""

PASS_OVER = 100
"""The most records of a newer version one walk passes over (lib/records.lua)."""

STUB_ZEROED: tuple[str, ...] = (
    *("priority", "lease_ms", "backoff_ms", "backoff_max_ms", "jitter_pm", "keep_result_ms"),
    *("keep_dead_ms", "deadline_ms", "leased_ms", "started_ms"),
)
"""The numbers a stub does not keep: it reads them as 0 (lib/job.lua read_stub)."""

QUARANTINE_NOTE = "quarantined: a corrupt record, found "
"""The error text of a quarantined record, before where it was found (lib/moves.lua)."""


def split_by_bytes(sizes: Sequence[int], budget: int) -> list[range]:
    """How the client splits a batch over calls: consecutive items of at most ``budget``
    bytes in all, an item larger than the budget alone (Queue(max_call_bytes=...))."""
    parts, start, total = [], 0, 0
    for position, size in enumerate(sizes):
        if position > start and total + size > budget:
            parts.append(range(start, position))
            start, total = position, 0
        total += size
    if start < len(sizes):
        parts.append(range(start, len(sizes)))
    return parts


def ready_score(priority: int, seq: int) -> int:
    """A waiting job's score in the ready ZSET (lib/ready.lua)."""
    return (1000 - priority) * SEQ_SPAN + seq % SEQ_SPAN


@dataclass
class ModelJob:
    """One job: the fields of its record (lib/job.lua), then what the queue keeps beside it.

    ``seq`` is its FIFO number while waiting (0: handed back); ``stub_until_ms`` its stub's
    score; ``unreadable`` why its stored record cannot be read (None: it can), ``stored`` the
    bytes planted over it (None: the record is what the scripts wrote, version 3 or a stub);
    ``quarantined_ms`` when a walk set it aside as corrupt.
    """

    id: str
    state: State
    attempt: int
    max_attempts: int
    priority: int
    lease_ms: int
    backoff_ms: int
    backoff_max_ms: int
    jitter_pm: int
    keep_result_ms: int
    keep_dead_ms: int
    token: str
    outcome: Outcome
    deadline_ms: int
    worker: str
    created_ms: int
    ready_ms: int
    leased_ms: int
    started_ms: int
    finished_ms: int
    payload_bytes: int
    payload: bytes | None
    result: bytes | None = None
    error: str | None = None
    seq: int = 0
    stub: bool = False
    stub_until_ms: int = 0
    unreadable: Unreadable | None = None
    stored: bytes | None = None
    quarantined_ms: int | None = None

    @property
    def readable(self) -> bool:
        """True when the scripts can read the stored record."""
        return self.unreadable is None

    def part(self) -> str:
        """The ZSET that holds the job: its state's, ``stubs`` or ``quarantine``."""
        if self.quarantined_ms is not None:
            return "quarantine"
        if self.stub:
            return "stubs"
        return SET_PARTS[self.state]

    def keep_ms(self) -> int:
        """How long the job is kept once finished (keep_result_ms when completed)."""
        return self.keep_result_ms if self.state is State.COMPLETED else self.keep_dead_ms

    def score(self) -> int:
        """The job's score in the ZSET that holds it."""
        part = self.part()
        if part == "quarantine":
            assert self.quarantined_ms is not None
            return self.quarantined_ms
        if part == "stubs":
            return self.stub_until_ms
        if self.state is State.WAITING:
            return ready_score(self.priority, self.seq)
        if self.state is State.DELAYED:
            return self.ready_ms
        if self.state is State.ACTIVE:
            return self.deadline_ms
        return self.finished_ms + self.keep_ms()

    def fields(self) -> dict[str, Any]:
        """The record's fields by JOB_FIELDS name, state and outcome as names."""
        values: dict[str, Any] = {name: getattr(self, name) for name in RECORD_NUMBERS}
        values["state"] = self.state.value
        values["outcome"] = self.outcome.value
        return values

    def record(self) -> bytes:
        """The bytes stored in ``meta``: what was planted, or the version 3 record (a stub's
        layout for a stub) the scripts write."""
        if self.stored is not None:
            return self.stored
        if self.stub:
            return records.encode_stub(self.fields())
        return records.encode(self.fields())

    def options(self) -> JobOptions:
        """The options the record keeps, as ``inspect`` gives them."""
        return JobOptions(
            priority=self.priority,
            max_attempts=self.max_attempts,
            lease_ms=self.lease_ms,
            backoff_ms=self.backoff_ms,
            backoff_max_ms=self.backoff_max_ms,
            jitter=self.jitter_pm / 1000,
            keep_result_ms=self.keep_result_ms,
            keep_dead_ms=self.keep_dead_ms,
        )


@dataclass
class QueueModel:
    """The reference model of one queue named ``queue``, its clock at ``now``.

    ``max_payload_bytes`` is the client's decoding cap (what it reports as ``payload_error``).
    ``removed`` names each job whose record is gone (``"purged"`` or ``"trimmed"``), so a test
    can tell a lost job from one that left on purpose. ``seq`` is the FIFO counter; ``wake``
    the length of the wake LIST; ``requests`` and ``request_exp`` the request records (id ->
    stored text, id -> when forgotten); ``running`` and ``unreadable_seen`` the ZSETs of those
    names; ``disturbed`` the ids whose record was ever planted over (their running entries may
    stand for nothing). ``notes`` collects which paths of the scripts the calls took (for the
    coverage a run reports); nothing reads it back.
    """

    queue: str
    now: int
    retention: Retention
    max_payload_bytes: int
    jobs: dict[str, ModelJob] = field(default_factory=dict)
    removed: dict[str, str] = field(default_factory=dict)
    running: dict[str, int] = field(default_factory=dict)
    unreadable_seen: dict[str, int] = field(default_factory=dict)
    requests: dict[str, str] = field(default_factory=dict)
    request_exp: dict[str, int] = field(default_factory=dict)
    disturbed: set[str] = field(default_factory=set)
    seq: int = 0
    wake: int = 0
    notes: list[str] = field(default_factory=list)

    # -- clock and views -------------------------------------------------------------------

    def advance(self, ms: int) -> None:
        """Move the virtual clock ``ms`` ahead."""
        self.now += ms

    def next_event_ms(self, kind: str) -> int | None:
        """The earliest time after now at which something of ``kind`` falls due: a lease
        ``"deadline"``, a delayed job's ``"run_at"`` time, a finished record's or stub's
        ``"expiry"``, the end of a finished job's repeat ``"window"`` (where count trimming
        stops keeping a stub), a request record's ``"forget"`` time, or the end of the
        ``"memory"`` of a newer record met. None when nothing of that kind lies ahead."""
        window = self.retention.repeat_window_ms
        if kind == "forget":
            times = list(self.request_exp.values())
        elif kind == "memory":
            times = [t + UNREADABLE_MEMORY_MS for t in self.unreadable_seen.values()]
        elif kind == "window":
            times = [
                j.finished_ms + window
                for j in self.jobs.values()
                if j.part() in ("completed", "dead", "cancelled")
            ]
        else:
            parts = {
                "deadline": ("active",),
                "run_at": ("delayed",),
                "expiry": ("completed", "dead", "cancelled", "stubs"),
            }[kind]
            times = [j.score() for j in self.jobs.values() if j.part() in parts]
        ahead = [t for t in times if t > self.now]
        return min(ahead) if ahead else None

    def take_wake_token(self) -> bool:
        """An idle worker pops one wake-up token; False when there was none."""
        if self.wake == 0:
            return False
        self.wake -= 1
        return True

    def members(self, part: str) -> list[tuple[str, int]]:
        """(id, score) of the ZSET ``part`` (a state's set, stubs or quarantine), in order."""
        held = [(j.score(), j.id) for j in self.jobs.values() if j.part() == part]
        return [(job_id, score) for score, job_id in sorted(held)]

    def ids(self, part: str) -> list[str]:
        """The ids of the ZSET ``part``, in order."""
        return [job_id for job_id, _ in self.members(part)]

    def due(self, part: str, limit: int) -> list[str]:
        """ZRANGEBYSCORE part -inf now LIMIT 0 limit."""
        return [job_id for job_id, score in self.members(part) if score <= self.now][:limit]

    def walk(
        self, part: str, limit: int, *, due_only: bool, start: int = 0
    ) -> tuple[list[str], int]:
        """records.lua walk_set: from position ``start`` of the ZSET ``part`` (by rank, or
        among the members due now), ids until ``limit`` of them are not of a newer version;
        those of a newer version are passed over, at most PASS_OVER in one walk. The ids in
        order (passed over ones too) and the position after the last one read."""
        members = self.ids(part) if not due_only else self.due(part, len(self.jobs) + 1)
        ids: list[str] = []
        offset, passed, want = start, 0, limit
        while want > 0:
            batch = members[offset : offset + want]
            offset += len(batch)
            newer = sum(1 for i in batch if self.jobs[i].unreadable is Unreadable.NEWER)
            ids += batch
            passed += newer
            if len(batch) < want:
                break
            want = min(newer, PASS_OVER - passed)
        if passed:
            self.notes.append("a walk passed over a newer record")
        return ids, offset

    def lease_current(self, job: ModelJob | None, token: str) -> bool:
        """The lease rule (lib/lease.lua): active, the token matches, now < deadline."""
        return (
            job is not None
            and job.readable
            and job.state is State.ACTIVE
            and job.token == token
            and self.now < job.deadline_ms
        )

    def decoded(self, data: bytes | None, what: str = "payload") -> tuple[Any, str | None]:
        """A payload or result as the client decodes it: (value, None), or (None, why)."""
        if data is None:
            return None, None
        try:
            return decode(data, max_bytes=self.max_payload_bytes, what=what), None
        except PayloadError as exc:
            return None, str(exc)

    def inspect(self, job_id: str) -> Inspected | None:
        """Everything ``Queue.inspect`` must say about a job (an :class:`UnreadableRecord`
        when its record cannot be read); None when there is no record."""
        job = self.jobs.get(job_id)
        if job is None:
            return None
        if not job.readable:
            assert job.unreadable is not None and job.stored is not None
            return UnreadableRecord(
                queue=self.queue,
                id=job_id,
                reason=job.unreadable,
                record=job.stored,
                payload=job.payload,
                note=job.error,
                quarantined_ms=job.quarantined_ms,
                now_ms=self.now,
            )
        payload, payload_error = self.decoded(job.payload)
        result, result_error = self.decoded(job.result, "result")
        return JobInfo(
            queue=self.queue,
            id=job.id,
            state=job.state,
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            priority=job.priority,
            token=job.token,
            outcome=job.outcome,
            worker=job.worker,
            deadline_ms=job.deadline_ms,
            created_ms=job.created_ms,
            ready_ms=job.ready_ms,
            leased_ms=job.leased_ms,
            started_ms=job.started_ms,
            finished_ms=job.finished_ms,
            options=job.options(),
            payload=payload,
            result=result,
            error=job.error,
            now_ms=self.now,
            payload_bytes=job.payload_bytes,
            stub=job.stub,
            payload_error=payload_error,
            result_error=result_error,
            raw_payload=job.payload if payload_error else None,
            raw_result=job.result if result_error else None,
        )

    def stats(self, active_limit: int = 100) -> QueueStats:
        """stats.lua: the six sets' sizes, when the longest-waiting job became ready (as the
        script finds it: the readable head of each priority band, at most 64 bands), the first
        ``active_limit`` active jobs with a readable record, and the running, stub, quarantine
        and recent newer-record counts."""
        counts = {state: len(self.members(SET_PARTS[state])) for state in SET_STATES}
        active = [
            ActiveJob(j.id, j.worker, j.attempt, j.deadline_ms, j.leased_ms, j.started_ms)
            for j in (self.jobs[i] for i in self.ids("active")[:active_limit])
            if j.readable
        ]
        since = self.now - UNREADABLE_MEMORY_MS
        return QueueStats(
            self.queue,
            self.now,
            counts,
            self._oldest_waiting_ms(),
            active,
            running=len(self.running),
            stubs=len(self.members("stubs")),
            quarantined=len(self.members("quarantine")),
            unreadable=sum(1 for t in self.unreadable_seen.values() if t >= since),
        )

    def _oldest_waiting_ms(self) -> int | None:
        """stats.lua's oldest_waiting_ms: per priority band (64 at most), the least ready_ms
        of its first 16 hand-backs (seq 0) and of the first readable job of the next 4."""
        bands: dict[int, list[tuple[int, str]]] = {}
        for job_id, score in self.members("ready"):
            bands.setdefault(score // SEQ_SPAN, []).append((score % SEQ_SPAN, job_id))
        oldest: int | None = None
        for band in sorted(bands)[:STATS_BANDS]:
            front = [i for seq, i in bands[band] if seq == 0][:STATS_FRONT]
            behind = [i for seq, i in bands[band] if seq != 0][:STATS_NEXT]
            seen = [self.jobs[i] for i in front if self.jobs[i].readable]
            seen += [self.jobs[i] for i in behind if self.jobs[i].readable][:1]
            for job in seen:
                if oldest is None or job.ready_ms < oldest:
                    oldest = job.ready_ms
        return oldest

    # -- enqueue ---------------------------------------------------------------------------

    def enqueue_many(self, rows: Sequence[JobRow], budget: int) -> list[Enqueued]:
        """enqueue.lua, once per part of the batch the client sends in one call (``budget``:
        its max_call_bytes): each job is created (waiting, or delayed until its run-at time),
        or, when its id exists (a record, a stub, an unreadable record), answered with that
        job's state (None for an unreadable record), changing nothing."""
        answers: list[Enqueued] = []
        for part in split_by_bytes([len(payload) for _, payload, _ in rows], budget):
            answers += self._enqueue_call([rows[i] for i in part])
        return answers

    def _enqueue_call(self, rows: Sequence[JobRow]) -> list[Enqueued]:
        answers = []
        for job_id, payload, options in rows:
            existing = self.jobs.get(job_id)
            if existing is not None:
                self._note_stub(existing, "enqueue")
                state = existing.state if existing.readable else None
                answers.append(Enqueued(job_id, False, state))
                continue
            run_at = self.now + options.delay_ms
            if options.run_at_ms:
                run_at = options.run_at_ms
            job = ModelJob(
                id=job_id,
                state=State.WAITING,
                attempt=0,
                max_attempts=options.max_attempts,
                priority=options.priority,
                lease_ms=options.lease_ms,
                backoff_ms=options.backoff_ms,
                backoff_max_ms=options.backoff_max_ms,
                jitter_pm=round(options.jitter * 1000),
                keep_result_ms=options.keep_result_ms,
                keep_dead_ms=options.keep_dead_ms,
                token="",
                outcome=Outcome.NONE,
                deadline_ms=0,
                worker="",
                created_ms=self.now,
                ready_ms=self.now,
                leased_ms=0,
                started_ms=0,
                finished_ms=0,
                payload_bytes=len(payload),
                payload=payload,
            )
            self.jobs[job_id] = job
            self.removed.pop(job_id, None)
            if run_at > self.now:
                self._to_delayed(job, run_at)
            else:
                self._to_waiting(job, front=False)
            answers.append(Enqueued(job_id, True, job.state))
        return answers

    # -- leases ----------------------------------------------------------------------------

    def claim(
        self,
        worker: str,
        claim_id: str,
        count: int,
        *,
        maintenance: int,
        lease_ms: int | None,
        max_bytes: int,
        tokens: Mapping[str, str],
    ) -> Claimed:
        """claim.lua. A remembered claim id answers with its leases that are still current and
        leases nothing. Otherwise: stage 1 promotes due delayed jobs, ends expired leases and
        forgets old request records (each up to ``maintenance``); stage 2 leases the first
        ``count`` waiting jobs in order, setting aside each unreadable record met, and stops
        before the job whose payload would take the payloads leased past ``max_bytes`` (the
        first job is always leased). When none is leased, the answer names the least score of
        the delayed and active sets.

        ``tokens`` maps job id to the token the real reply gave it; a job the model leases but
        the reply does not name gets the token ``"<missing>"``.
        """
        previous = self._recall_request(claim_id, "claim")
        if previous is not None:
            held = [self.jobs.get(job_id) for job_id, _ in parse_pairs(previous)]
            current = [
                self._leased(job)
                for job, (_, token) in zip(held, parse_pairs(previous), strict=True)
                if job is not None and self.lease_current(job, token)
            ]
            return Claimed(current, self.now, repeated=True)
        if maintenance > 0:
            self._promote_due(maintenance)
            self._expire_leases(maintenance)
            self._forget_requests(maintenance)
        leased: list[ModelJob] = []
        used = 0
        for job_id in self.walk("ready", count, due_only=False)[0]:
            job = self.jobs[job_id]
            if not job.readable:
                self._set_aside(job, "in the ready set")
                continue
            assert job.payload is not None, f"{job_id} waits without a payload"
            size = len(job.payload)
            if leased and used + size > max_bytes:
                self.notes.append("claim stopped by its byte budget")
                break
            used += size
            job.attempt += 1
            job.token = tokens.get(job_id, "<missing>")
            job.outcome = Outcome.RUNNING
            job.worker = worker
            job.leased_ms = self.now
            job.started_ms = 0
            self._to_active(job, self.now + (lease_ms or job.lease_ms))
            leased.append(job)
        if not leased:
            scores = [
                s for part in ("delayed", "active") for _, s in self.members(part) if s > self.now
            ]
            return Claimed([], self.now, next_ms=min(scores) if scores else None)
        pairs = ",".join(f"{job.id} {job.token}" for job in leased)
        self._remember_request(claim_id, "claim", pairs)
        return Claimed([self._leased(job) for job in leased], self.now)

    def complete_many(
        self, items: Sequence[tuple[str, str, bytes]], budget: int
    ) -> list[ItemStatus]:
        """complete.lua, once per part of the batch the client sends in one call (split by
        the results' bytes): each (id, token, result) is accepted only with the current lease;
        the token that completed the job gets ``duplicate`` (a stub answers so too); then the
        completed set and the stubs are trimmed (``trim_batch``)."""
        answers: list[ItemStatus] = []
        for part in split_by_bytes([len(result) for _, _, result in items], budget):
            answers += self._complete_call([items[i] for i in part])
        return answers

    def _complete_call(self, items: Sequence[tuple[str, str, bytes]]) -> list[ItemStatus]:
        answers = []
        for job_id, token, result in items:
            job = self.jobs.get(job_id)
            self._note_stub(job, "complete")
            if job is None:
                status = Status.NOT_FOUND
            elif not job.readable:
                status = Status.UNREADABLE
            elif self.lease_current(job, token):
                self._end_lease(job, Outcome.COMPLETED, State.COMPLETED)
                job.result = result
                status = Status.OK
            elif job.token == token and job.outcome is Outcome.COMPLETED:
                status = Status.DUPLICATE
            else:
                status = Status.LEASE_LOST
            answers.append(ItemStatus(job_id, status))
        r = self.retention
        self._trim_stubs(r.trim_batch)
        self._trim_finished(State.COMPLETED, r.max_completed, r.trim_batch)
        return answers

    def fail(
        self, job_id: str, token: str, error: str, *, retryable: bool, delay_ms: int | None
    ) -> Failed | Status:
        """fail.lua. With the current lease: dead when non-retryable or attempts are used up,
        else retried after ``delay_ms`` or the job's backoff (drawn from the token), delayed
        when that is over 0; then the dead set and the stubs are trimmed. A repeat with the
        same token answers the first outcome (run_at: the job's ready_ms, 0 when dead)."""
        job = self.jobs.get(job_id)
        self._note_stub(job, "fail")
        if job is None:
            return Status.NOT_FOUND
        if not job.readable:
            return Status.UNREADABLE
        if not self.lease_current(job, token):
            if job.token == token and job.outcome in (Outcome.RETRY, Outcome.DEAD):
                run_at = job.ready_ms if job.outcome is Outcome.RETRY else 0
                return Failed(job.outcome, run_at, repeated=True)
            return Status.LEASE_LOST
        job.error = error
        answer = Failed(Outcome.DEAD, 0)
        if not retryable or job.attempt >= job.max_attempts:
            self._end_lease(job, Outcome.DEAD, State.DEAD)
        else:
            if delay_ms is None:
                delay_ms = retry_delay_ms(job.options(), job.attempt, job.token)
            run_at = self.now + delay_ms
            answer = Failed(Outcome.RETRY, run_at)
            if delay_ms > 0:
                self._end_lease(job, Outcome.RETRY, State.DELAYED, run_at)
            else:
                self._end_lease(job, Outcome.RETRY, State.WAITING)
        r = self.retention
        self._trim_stubs(r.trim_batch)
        self._trim_finished(State.DEAD, r.max_dead, r.trim_batch)
        return answer

    def heartbeat(
        self, leases: Sequence[LeaseRef], *, lease_ms: int | None, started: Mapping[str, int]
    ) -> Heartbeat:
        """heartbeat.lua: each current lease runs ``lease_ms`` (or the job's own) from now, in
        the active set and, for a started job, the running set; a first report in ``started``
        (token -> ms ago) sets started_ms and adds the job to the running set. The others are
        named lost with deadline 0 and left alone."""
        lost, deadlines = [], []
        for job_id, token in leases:
            job = self.jobs.get(job_id)
            if job is not None and self.lease_current(job, token):
                job.deadline_ms = self.now + (lease_ms or job.lease_ms)
                if job.started_ms > 0:
                    self.running[job_id] = job.deadline_ms
                if self._note_started(job, started.get(token, -1)):
                    self.running[job_id] = job.deadline_ms
                self._save(job)
                deadlines.append(job.deadline_ms)
            else:
                lost.append(job_id)
                deadlines.append(0)
        return Heartbeat(lost, deadlines, self.now)

    def release(
        self, leases: Sequence[LeaseRef], *, started: Mapping[str, int]
    ) -> list[ItemStatus]:
        """release.lua: each current lease is handed back, outcome returned: the job waits
        again first in its priority, its attempt given back unless its handler began (reported
        before, or in ``started`` now); a started job on its last attempt goes to the dead
        letters with the reason. The token that handed it back gets ``duplicate``."""
        answers = []
        for job_id, token in leases:
            job = self.jobs.get(job_id)
            self._note_stub(job, "release")
            if job is None:
                status = Status.NOT_FOUND
            elif not job.readable:
                status = Status.UNREADABLE
            elif self.lease_current(job, token):
                self._note_started(job, started.get(token, -1))
                self.notes.append(f"release of a job started={job.started_ms > 0}")
                if job.started_ms == 0:
                    job.attempt -= 1
                    self._end_lease(job, Outcome.RETURNED, State.WAITING)
                elif job.attempt < job.max_attempts:
                    self._end_lease(job, Outcome.RETURNED, State.WAITING)
                else:
                    job.error = (
                        f"handed back unfinished on attempt {job.attempt} of"
                        f" {job.max_attempts} (worker {job.worker})"
                    )
                    self._end_lease(job, Outcome.RETURNED, State.DEAD)
                status = Status.OK
            elif job.token == token and job.outcome is Outcome.RETURNED:
                status = Status.DUPLICATE
            else:
                status = Status.LEASE_LOST
            answers.append(ItemStatus(job_id, status))
        return answers

    # -- maintenance and administration ----------------------------------------------------

    def reap(self, limit: int) -> Reaped:
        """reap.lua: stage 1 promotes and expires, stage 2 tidies the running set, stage 3
        trims each finished set and the stubs and forgets old request records and newer
        records not met for 10 minutes; each step bounded by ``limit``. ``trimmed`` counts
        every record a trim met (deleted, made a stub, or set aside) and the stubs met."""
        promoted = self._promote_due(limit)
        requeued, dead = self._expire_leases(limit)
        self._tidy_running(limit)
        since = self.now - UNREADABLE_MEMORY_MS
        stale = sorted((t, i) for i, t in self.unreadable_seen.items() if t <= since)[:limit]
        for _, job_id in stale:
            del self.unreadable_seen[job_id]
            self.notes.append("a newer record forgotten")
        r = self.retention
        trimmed = self._trim_stubs(limit)
        trimmed += self._trim_finished(State.COMPLETED, r.max_completed, limit)
        trimmed += self._trim_finished(State.DEAD, r.max_dead, limit)
        trimmed += self._trim_finished(State.CANCELLED, r.max_cancelled, limit)
        self._forget_requests(limit)
        return Reaped(promoted, requeued, dead, trimmed)

    def cancel(self, job_id: str) -> CancelAnswer:
        """cancel.lua: only a waiting or delayed job is cancelled (its outcome kept); a
        cancelled one (or its stub) answers ``duplicate``; then the cancelled set and the
        stubs are trimmed."""
        job = self.jobs.get(job_id)
        self._note_stub(job, "cancel")
        if job is None:
            return (Status.NOT_FOUND, None)
        if not job.readable:
            return (Status.UNREADABLE, None)
        if job.state is State.CANCELLED:
            return (Status.DUPLICATE, None)
        if job.state not in (State.WAITING, State.DELAYED):
            return (Status.BAD_STATE, job.state)
        self._finish(job, State.CANCELLED)
        r = self.retention
        self._trim_stubs(r.trim_batch)
        self._trim_finished(State.CANCELLED, r.max_cancelled, r.trim_batch)
        return (Status.OK, None)

    def requeue(
        self, request_id: str, ids: Sequence[str], limit: int
    ) -> tuple[Status, list[ItemStatus]]:
        """requeue.lua: a remembered request id answers as the first call did. Otherwise each
        dead job (``ids``, or the first ``limit`` of the dead set) waits again with attempt 0
        and no outcome (its token and error stay); a stub is not found; an unreadable record
        met in the dead set (by limit) is set aside. The answer is remembered."""
        previous = self._recall_request(request_id, "requeue")
        if previous is not None:
            return Status.DUPLICATE, [ItemStatus(i, Status(s)) for i, s in parse_pairs(previous)]
        from_set = not ids
        walked = self.walk("dead", limit, due_only=False)[0]
        targets = walked if from_set else list(ids)
        answers = []
        for job_id in targets:
            job = self.jobs.get(job_id)
            self._note_stub(job, "requeue or purge")
            if job is not None and not job.readable:
                status = Status.UNREADABLE
                if from_set:
                    self._set_aside(job, "in the dead set")
            elif job is None or job.stub:
                status = Status.NOT_FOUND
            elif job.state is not State.DEAD:
                status = Status.BAD_STATE
            else:
                job.attempt = 0
                job.outcome = Outcome.NONE
                job.finished_ms = 0
                self._to_waiting(job, front=False)
                status = Status.OK
            answers.append(ItemStatus(job_id, status))
        self._remember_request(
            request_id, "requeue", ",".join(f"{a.id} {a.status}" for a in answers)
        )
        return Status.OK, answers

    def purge(
        self, request_id: str, state: State, ids: Sequence[str], limit: int
    ) -> tuple[Status, list[ItemStatus]]:
        """purge.lua: a remembered request id answers as the first call did. Otherwise each
        job of ``ids`` (or the first ``limit`` of ``state``'s set) in that finished state, or a
        stub of it, is deleted for good (an id given twice: not_found the second time); an
        unreadable record met in the set (by limit) is set aside. The answer is remembered."""
        previous = self._recall_request(request_id, "purge")
        if previous is not None:
            return Status.DUPLICATE, [ItemStatus(i, Status(s)) for i, s in parse_pairs(previous)]
        from_set = not ids
        walked = self.walk(SET_PARTS[state], limit, due_only=False)[0]
        targets = walked if from_set else list(ids)
        answers: list[ItemStatus] = []
        seen: set[str] = set()
        for job_id in targets:
            job = self.jobs.get(job_id)
            self._note_stub(job, "requeue or purge")
            if job is not None and not job.readable:
                status = Status.UNREADABLE
                if from_set:
                    self._set_aside(job, "in a finished set")
            elif job is None or job_id in seen:
                status = Status.NOT_FOUND
            elif job.state is not state:
                status = Status.BAD_STATE
            else:
                self._delete(job, "purged")
                status = Status.OK
                seen.add(job_id)
            answers.append(ItemStatus(job_id, status))
        self._remember_request(request_id, "purge", ",".join(f"{a.id} {a.status}" for a in answers))
        return Status.OK, answers

    # -- records planted from outside ------------------------------------------------------

    def plant_unreadable(self, job_id: str, record: bytes, why: Unreadable) -> None:
        """A record the scripts cannot read is written over ``job_id``'s: the job stays where
        it is, for the walks to meet."""
        job = self.jobs[job_id]
        job.unreadable = why
        job.stored = record
        self.disturbed.add(job_id)

    def plant_older(self, job_id: str, version: int) -> bytes:
        """The job's record rewritten as ``version`` 1 or 2 (what a worker of that version
        writes): the scripts read it with started_ms 0 and payload_bytes -1 (those versions
        have neither), and keep both so when they write it back as version 3. A started job's
        running entry stays, standing for nothing, until tidy_running drops it. Returns the
        bytes to plant."""
        job = self.jobs[job_id]
        assert job.readable and not job.stub
        job.stored = records.encode(job.fields(), version)
        job.started_ms = 0
        job.payload_bytes = -1
        self.disturbed.add(job_id)
        return job.stored

    # -- what the scripts share (lua/lib) ------------------------------------------------------

    def _note_stub(self, job: ModelJob | None, what: str) -> None:
        """Note a call about a job of which only the stub is kept."""
        if job is not None and job.readable and job.stub:
            self.notes.append(f"{what} answered by a stub")

    def _save(self, job: ModelJob) -> None:
        """job_save: the record is written (as version 3) from now on."""
        job.stored = None

    def _to_waiting(self, job: ModelJob, *, front: bool) -> None:
        """moves.lua to_waiting: behind every job that became ready before it (a hand-back:
        first in its priority), ready_ms now; one wake token."""
        job.state = State.WAITING
        job.ready_ms = self.now
        if front:
            job.seq = 0
        else:
            self.seq += 1
            job.seq = self.seq
        self.wake = min(WAKE_MAX, self.wake + 1)
        self._save(job)

    def _to_delayed(self, job: ModelJob, run_at: int) -> None:
        """moves.lua to_delayed: delayed until ``run_at``."""
        job.state = State.DELAYED
        job.ready_ms = run_at
        self._save(job)

    def _to_active(self, job: ModelJob, deadline: int) -> None:
        """moves.lua to_active: leased until ``deadline``."""
        job.state = State.ACTIVE
        job.deadline_ms = deadline
        self._save(job)

    def _finish(self, job: ModelJob, state: State) -> None:
        """moves.lua finish: completed, dead or cancelled, finished now."""
        job.state = state
        job.deadline_ms = 0
        job.finished_ms = self.now
        self._save(job)

    def _end_lease(
        self, job: ModelJob, outcome: Outcome, next_state: State, run_at: int = 0
    ) -> None:
        """lease_end.lua end_lease: the one way a lease ends; a started job leaves the running
        set (an entry the record no longer knows of stays)."""
        job.outcome = outcome
        job.deadline_ms = 0
        if job.started_ms > 0:
            self.running.pop(job.id, None)
        if next_state is State.WAITING:
            self._to_waiting(job, front=outcome is Outcome.RETURNED)
        elif next_state is State.DELAYED:
            self._to_delayed(job, run_at)
        else:
            self._finish(job, next_state)

    def _note_started(self, job: ModelJob, ago_ms: int) -> bool:
        """lease.lua note_started: the first report sets started_ms, never before the lease
        began (nor 0). True when this report is the first."""
        if ago_ms < 0 or job.started_ms > 0:
            return False
        job.started_ms = max(job.leased_ms, self.now - ago_ms, 1)
        return True

    def _set_aside(self, job: ModelJob, where: str) -> None:
        """moves.lua set_aside: a corrupt record leaves its set for the quarantine, with the
        reason as its error; a newer one stays and is noted as met now."""
        self.notes.append(f"{job.unreadable} record set aside {where}")
        if job.unreadable is Unreadable.CORRUPT:
            job.quarantined_ms = self.now
            job.error = QUARANTINE_NOTE + where
        else:
            self.unreadable_seen[job.id] = self.now

    def _delete(self, job: ModelJob, reason: str) -> None:
        """trim.lua delete_job: every trace of the job goes; ``removed`` says why."""
        del self.jobs[job.id]
        self.removed[job.id] = reason

    def _leased(self, job: ModelJob) -> Job:
        """The lease of a job as the claim reply gives it, its payload decoded by the
        client (None, with the reason, when it cannot be)."""
        payload, error = self.decoded(job.payload)
        return Job(self.queue, job.id, payload, job.attempt, job.token, job.deadline_ms, error)

    def _remember_request(self, request_id: str, kind: str, value: str) -> None:
        """requests.lua remember_request: ``<kind>:<value>``, kept for the repeat window."""
        self.requests[request_id] = f"{kind}:{value}"
        self.request_exp[request_id] = self.now + self.retention.repeat_window_ms

    def _recall_request(self, request_id: str, kind: str) -> str | None:
        """requests.lua recall_request: what the call of ``kind`` with this id did, or None.
        (The machine never reuses a request id for another kind of call.)"""
        previous = self.requests.get(request_id)
        if previous is None:
            return None
        found, _, value = previous.partition(":")
        assert found == kind, f"request id {request_id} reused by a {kind} after a {found}"
        return value

    def _forget_requests(self, limit: int) -> None:
        """requests.lua forget_requests: the first ``limit`` records whose window has passed."""
        stale = sorted((t, i) for i, t in self.request_exp.items() if t <= self.now)[:limit]
        for _, request_id in stale:
            self.notes.append("a request record forgotten")
            del self.request_exp[request_id]
            del self.requests[request_id]

    def _promote_due(self, limit: int) -> int:
        """promote_due.lua: the first ``limit`` due delayed jobs (unreadable ones set aside)
        wait again, ready now."""
        promoted = 0
        for job_id in self.walk("delayed", limit, due_only=True)[0]:
            job = self.jobs[job_id]
            if not job.readable:
                self._set_aside(job, "in the delayed set")
            else:
                self._to_waiting(job, front=False)
                promoted += 1
        return promoted

    def _expire_leases(self, limit: int) -> tuple[int, int]:
        """expire_leases.lua: the first ``limit`` leases past their deadline end: to waiting
        (outcome expired), or dead with the reason at max_attempts; unreadable records met
        are set aside."""
        requeued = dead = 0
        for job_id in self.walk("active", limit, due_only=True)[0]:
            job = self.jobs[job_id]
            if not job.readable:
                self._set_aside(job, "in the active set")
            elif job.attempt >= job.max_attempts:
                job.error = (
                    f"lease expired on attempt {job.attempt} of {job.max_attempts}"
                    f" (worker {job.worker})"
                )
                self._end_lease(job, Outcome.DEAD, State.DEAD)
                dead += 1
            else:
                self._end_lease(job, Outcome.EXPIRED, State.WAITING)
                requeued += 1
        return requeued, dead

    def _tidy_running(self, limit: int) -> None:
        """lease.lua tidy_running: the first ``limit`` running entries past their deadline:
        a job still leased, started and extended keeps its entry at its deadline; any other
        entry goes."""
        due = sorted((t, i) for i, t in self.running.items() if t <= self.now)[:limit]
        for _, job_id in due:
            job = self.jobs.get(job_id)
            if (
                job is not None
                and job.readable
                and job.state is State.ACTIVE
                and job.started_ms > 0
                and job.deadline_ms > self.now
            ):
                self.running[job_id] = job.deadline_ms
                self.notes.append("running entry kept by tidy_running")
            else:
                del self.running[job_id]
                self.notes.append("running entry dropped by tidy_running")

    def _trim_finished(self, state: State, max_count: int, limit: int) -> int:
        """trim.lua trim_finished: up to ``limit`` records whose retention ran out are
        deleted; then, while the set holds over ``max_count``, up to ``limit`` more, soonest to
        expire first, each deleted when its repeat window has passed, else made a stub.
        Unreadable records met are set aside, and not counted: returns the number of records
        deleted or made stubs. Both walks pass over records of a newer version."""
        if limit <= 0:
            return 0
        part = SET_PARTS[state]
        size = len(self.ids(part))
        expired, offset = self.walk(part, limit, due_only=True)
        leaving = sum(1 for i in expired if self.jobs[i].unreadable is not Unreadable.NEWER)
        excess = size - leaving - max_count
        over: list[str] = []
        if excess > 0:
            over = self.walk(part, min(excess, limit), due_only=False, start=offset)[0]
        window = self.retention.repeat_window_ms
        trimmed = 0
        for n, job_id in enumerate([*expired, *over]):
            job = self.jobs[job_id]
            was_expired = n < len(expired)
            if not job.readable:
                self._set_aside(job, "in a finished set")
            elif was_expired or job.finished_ms + window <= self.now:
                self.notes.append(f"{state} trimmed, expired={was_expired}")
                self._delete(job, "trimmed")
                trimmed += 1
            else:
                self.notes.append(f"{state} made a stub")
                self._to_stub(job)
                trimmed += 1
        return trimmed

    def _to_stub(self, job: ModelJob) -> None:
        """trim.lua to_stub: only the stub stays (state, outcome, attempts, token and times),
        in the stubs set until ``finished_ms + min(keep, window)``; payload, result and error
        go."""
        job.stub_until_ms = job.finished_ms + min(job.keep_ms(), self.retention.repeat_window_ms)
        job.stub = True
        for name in STUB_ZEROED:
            setattr(job, name, 0)
        job.worker = ""
        job.payload_bytes = -1
        job.payload = job.result = job.error = None
        self._save(job)

    def _trim_stubs(self, limit: int) -> int:
        """trim.lua trim_stubs: up to ``limit`` stubs whose window ended are deleted
        (unreadable records met are set aside, and not counted). Returns the number deleted."""
        if limit <= 0:
            return 0
        deleted = 0
        for job_id in self.walk("stubs", limit, due_only=True)[0]:
            job = self.jobs[job_id]
            if not job.readable:
                self._set_aside(job, "in the stubs set")
            else:
                self.notes.append("stub deleted")
                self._delete(job, "trimmed")
                deleted += 1
        return deleted


def parse_pairs(value: str) -> list[tuple[str, str]]:
    """A request record ``"a b,c d"`` as [(a, b), (c, d)] (empty: none)."""
    return [(pair.split(" ")[0], pair.split(" ")[1]) for pair in value.split(",") if pair]
