"""Model-based property test: the Lua scripts against the reference model, step by step.

A hypothesis ``RuleBasedStateMachine`` drives a real :class:`scheduler.Queue` named ``sm`` on
the test Redis and :class:`tests.property.model.QueueModel` side by side. Every rule sends one
call to both (enqueue, claim, complete, fail, release, heartbeat, reap, cancel, requeue, purge;
repeated claims, completions, failures and releases; a worker that vanishes; time moving on;
SCRIPT FLUSH) and compares the answers: statuses, ids, attempts, tokens, deadlines, outcomes,
per-item statuses. After every step the invariant reads Redis's raw keys and checks that each
job is in exactly one state set (the one its record names), that the active set's scores are the
lease deadlines, that attempts stay within budget, that every record, set, claim record and the
wake LIST's length equal the model's, that no job was lost, and that stats equals the model's.

Time: each example pins the queue's clock at :data:`T0` (``scheduler.testing.pin_clock``) and
moves it with ``advance_clock``, so the model knows the ``now`` of every script call exactly.
Randomness the model cannot predict is read from the reply, checked, then adopted: a new lease
token must look like ``"<attempt>-" + 16 hex digits`` and never repeat; a retry delay drawn
from the job's backoff must lie in ``scheduler._policy.delay_bounds_ms``. Each example seeds
the server's Lua PRNG first, so that a replay draws the same values (hypothesis shrinks by
replaying; a jitter that changed between replays would make a failure flaky).

Runs: :func:`test_scripts_agree_with_model` (60 examples of up to 40 steps) in the default
run; :func:`test_scripts_agree_with_model_long` (500 examples of up to 80 steps) is marked
``slow`` and skipped unless ``SCHEDULER_SLOW=1`` is set: ``SCHEDULER_SLOW=1 pytest -m slow``.
Failures the machine finds are kept, shrunk, in ``test_regressions.py``.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, cast

import pytest
import redis
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from scheduler import (
    Failed,
    InvalidState,
    Job,
    JobInfo,
    JobNotFound,
    JobOptions,
    JobSpec,
    LeaseLost,
    Outcome,
    Queue,
    QueueStats,
    Retention,
    State,
    Status,
)
from scheduler._models import DAY_MS
from scheduler._ops import Call
from scheduler._scripts import all_scripts
from scheduler.testing import advance_clock, pin_clock

from .model import FINISHED_STATES, CancelAnswer, JobRequest, LeaseRef, QueueModel

T0 = 1_700_000_000_000
"""The instant each example pins the queue's clock at (Unix ms)."""

QUEUE = "sm"
WORKERS = ("worker-a", "worker-b")
GHOST = "ghost"
"""A job id that is never enqueued."""

RETENTION = Retention(max_completed=3, max_dead=3, max_cancelled=2, trim_batch=2)
"""Small count limits and trim steps, so trimming by count and its bound are exercised."""

PRNG_SEED = 20_240_601
"""The seed of the scripts' random draws at the start of each example."""

TOKEN_SHAPE = re.compile(r"(\d+)-[0-9a-f]{16}")

SET_PARTS: dict[State, str] = {
    State.WAITING: "ready",
    State.DELAYED: "delayed",
    State.ACTIVE: "active",
    State.COMPLETED: "completed",
    State.DEAD: "dead",
    State.CANCELLED: "cancelled",
}
"""The ZSET key part that holds the jobs of each state."""

job_options = st.builds(
    JobOptions,
    priority=st.sampled_from((0, 0, 5, -5)),
    delay_ms=st.sampled_from((0, 0, 300, 1000)),
    max_attempts=st.integers(min_value=1, max_value=3),
    lease_ms=st.just(1000),
    backoff_ms=st.sampled_from((0, 500)),
    backoff_max_ms=st.sampled_from((700, 3_600_000)),
    jitter=st.sampled_from((0.0, 0.5)),
    keep_result_ms=st.sampled_from((1500, DAY_MS)),
    keep_dead_ms=st.sampled_from((2500, DAY_MS)),
)
picks = st.integers(min_value=0, max_value=63)
"""An index into one of the machine's lists, taken modulo its length (shrinks to the first)."""

lease_refs = st.tuples(st.sampled_from(("held", "held", "issued", "made_up")), picks)
"""Which lease to send: one a worker holds (most often), any token ever issued (an old one,
or the current one), or a made-up one."""

clock_steps = st.sampled_from((1, 10, 100, 250, 499, 500, 501, 999, 1000, 1001, 2500, 5000))
"""Small steps, and steps to just before, at and past a lease (1000 ms) or a backoff."""

event_kinds = st.sampled_from(("deadline", "deadline", "run_at", "expiry", "forget"))
"""The kinds of event the clock can be moved to (see QueueModel.next_event_ms)."""

offsets = st.sampled_from((0, 0, -1, 1))
"""Where to stop around an event: at it, 1 ms before, or 1 ms after."""

DISTURBANCES = ("script flush", "worker-a vanishes", "worker-b vanishes", "wake token taken")


@dataclass(frozen=True)
class ClaimRequest:
    """One claim call, kept so that it can be sent again unchanged (a repeated call)."""

    worker: str
    claim_id: str
    count: int
    maintenance: int


@dataclass(frozen=True)
class HeldLease:
    """A lease some worker believes it holds."""

    job_id: str
    token: str
    worker: str


def seed_script_prng(client: redis.Redis, seed: int) -> None:
    """Seed the server's Lua PRNG (one per server, shared by every script), so that the
    random draws of an example (token nonces, retry jitter) are the same on every replay:
    hypothesis needs a replayed example to take the same path to shrink it. A server that
    refuses ``math.randomseed`` is left alone (its draws then vary between replays)."""
    with contextlib.suppress(redis.ResponseError):
        client.eval("math.randomseed(tonumber(ARGV[1]))", 0, seed)


def agree(what: str, actual: Any, expected: Any) -> None:
    """Assert that Redis's answer equals the model's, showing both when not."""
    assert actual == expected, f"{what}:\n  Redis: {actual!r}\n  model: {expected!r}"


def outcomes(what: str, *labels: object) -> None:
    """Count what a call did, as hypothesis events (the coverage of a run); nothing when the
    machine is driven by hand, as in test_regressions.py."""
    if not currently_in_test_context():
        return
    for label in labels:
        event(f"{what}: {label}")


class QueueMachine(RuleBasedStateMachine):
    """A queue on a real Redis and its reference model, driven together."""

    def __init__(self, redis_url: str) -> None:
        super().__init__()
        self.r = redis.Redis.from_url(redis_url, socket_timeout=10)
        self.q = Queue(self.r, QUEUE, retention=RETENTION)
        self.model = QueueModel(QUEUE, T0, RETENTION)
        self.counter = 0
        self.known_ids: list[str] = []
        self.created_ids: set[str] = set()
        self.held: dict[str, HeldLease] = {}
        self.issued: list[LeaseRef] = []
        self.claims_sent: list[ClaimRequest] = []
        self.last_finish: Callable[[], None] | None = None

    # -- bookkeeping -----------------------------------------------------------------------

    def fresh(self, prefix: str) -> str:
        """A new name: ``prefix`` and a number unique in this example."""
        self.counter += 1
        return f"{prefix}{self.counter}"

    def key(self, part: str) -> str:
        """The full name of one of the queue's keys."""
        return self.q.ops.keys.key(part)

    def pick_id(self, pick: int) -> str:
        """A job id seen in this example, or :data:`GHOST`."""
        pool = [*self.known_ids, GHOST]
        return pool[pick % len(pool)]

    def lease_for(self, ref: tuple[str, int]) -> LeaseRef:
        """The (job id, token) a lease reference names (pick 0: the newest held lease). An
        empty pool falls back to the next: held, then issued, then made up."""
        kind, pick = ref
        if kind == "held" and self.held:
            lease = list(reversed(self.held.values()))[pick % len(self.held)]
            return lease.job_id, lease.token
        if kind != "made_up" and self.issued:
            return self.issued[pick % len(self.issued)]
        return self.pick_id(pick), f"{1 + pick % 3}-{'0' * 16}"

    def drop_lease(self, job_id: str, token: str) -> None:
        """A worker is done with a lease (its complete, fail or release was accepted)."""
        lease = self.held.get(job_id)
        if lease is not None and lease.token == token:
            del self.held[job_id]

    def check_new_tokens(self, jobs: Sequence[Job]) -> None:
        """Each token of a new lease is ``<attempt>-<16 hex digits>`` and was never issued."""
        for job in jobs:
            shape = TOKEN_SHAPE.fullmatch(job.token)
            assert shape is not None, f"token {job.token!r} of {job.id} has the wrong shape"
            assert int(shape[1]) == job.attempt, f"token {job.token!r} is not attempt {job.attempt}"
            assert all(job.token != token for _, token in self.issued), f"{job.token} reissued"
            self.issued.append((job.id, job.token))

    # -- setup -----------------------------------------------------------------------------

    @initialize(first_jobs=st.lists(job_options, max_size=3))
    def start(self, first_jobs: list[JobOptions]) -> None:
        """An empty database, the queue's clock pinned at T0, the scripts' PRNG seeded; then
        the first jobs enqueued (so that early claims find work)."""
        self.r.flushdb()
        pin_clock(self.r, QUEUE, T0)
        seed_script_prng(self.r, PRNG_SEED)
        for options in first_jobs:
            self.send_enqueue([self.fresh("j")], [options])

    def teardown(self) -> None:
        """Close the machine's connection."""
        self.r.close()

    # -- enqueue ---------------------------------------------------------------------------

    def send_enqueue(self, ids: Sequence[str], options: Sequence[JobOptions]) -> None:
        """Enqueue ``ids`` (one call: enqueue for one job, enqueue_many for more)."""
        requests: list[JobRequest] = [
            (job_id, f"payload-{self.fresh('p')}", options[n % len(options)])
            for n, job_id in enumerate(ids)
        ]
        if len(requests) == 1:
            job_id, payload, opts = requests[0]
            actual = [self.q.enqueue(payload, id=job_id, options=opts)]
        else:
            actual = self.q.enqueue_many([JobSpec(p, i, o) for i, p, o in requests])
        agree("enqueue", actual, self.model.enqueue_many(requests))
        outcomes("enqueue", *(f"created={a.created} {a.state}" for a in actual))
        for answer in actual:
            if answer.id not in self.known_ids:
                self.known_ids.append(answer.id)
            if answer.created:
                self.created_ids.add(answer.id)

    @rule(options=job_options, reuse=st.none() | picks)
    def enqueue(self, options: JobOptions, reuse: int | None) -> None:
        """Enqueue one job under a fresh id, or under an id used before (a duplicate, or a
        new job when the old one is gone)."""
        if reuse is not None and self.known_ids:
            job_id = self.known_ids[reuse % len(self.known_ids)]
        else:
            job_id = self.fresh("j")
        self.send_enqueue([job_id], [options])

    @rule(
        options=st.lists(job_options, min_size=1, max_size=2),
        copy_of=picks,
        insert_at=picks,
        reuse=st.none() | picks,
    )
    def enqueue_batch(
        self, options: list[JobOptions], copy_of: int, insert_at: int, reuse: int | None
    ) -> None:
        """Enqueue a batch of fresh ids holding one id twice, and maybe one known id."""
        ids = [self.fresh("j") for _ in options]
        ids.insert(insert_at % (len(ids) + 1), ids[copy_of % len(ids)])
        if reuse is not None and self.known_ids:
            ids.append(self.known_ids[reuse % len(self.known_ids)])
        self.send_enqueue(ids, options)

    # -- leases ----------------------------------------------------------------------------

    def send_claim(self, request: ClaimRequest) -> None:
        """Send one claim; the tokens of new leases are checked, then adopted by the model."""
        actual = self.q.claim(
            request.worker,
            count=request.count,
            claim_id=request.claim_id,
            maintenance=request.maintenance,
        )
        if not actual.repeated:
            self.check_new_tokens(actual.jobs)
        tokens = {job.id: job.token for job in actual.jobs}
        expected = self.model.claim(
            request.worker, request.claim_id, request.count, request.maintenance, tokens
        )
        agree("claim", actual, expected)
        outcomes("claim", f"{len(actual.jobs)} jobs, repeated={actual.repeated}")
        for job in actual.jobs:
            self.held[job.id] = HeldLease(job.id, job.token, request.worker)

    @rule(
        worker=st.sampled_from(WORKERS),
        count=st.integers(min_value=1, max_value=3),
        maintenance=st.sampled_from((100, 100, 1, 0)),
        repeat=st.none() | picks,
    )
    def claim(self, worker: str, count: int, maintenance: int, repeat: int | None) -> None:
        """Claim up to ``count`` jobs under a fresh claim id; or send an earlier claim again,
        unchanged (a retry after a lost reply)."""
        if repeat is not None and self.claims_sent:
            self.send_claim(self.claims_sent[repeat % len(self.claims_sent)])
            return
        request = ClaimRequest(worker, self.fresh("c"), count, maintenance)
        self.claims_sent.append(request)
        self.send_claim(request)

    def send_complete(self, items: Sequence[tuple[str, str, Any]]) -> None:
        """Complete (id, token, result) items in one call."""
        actual = self.q.complete_many([((i, t), result) for i, t, result in items])
        agree("complete", actual, self.model.complete_many(items))
        outcomes("complete", *(answer.status for answer in actual))
        for (job_id, token, _), answer in zip(items, actual, strict=True):
            if answer.status is Status.OK:
                self.drop_lease(job_id, token)

    def send_fail(
        self, job_id: str, token: str, error: str, retryable: bool, delay_ms: int | None
    ) -> None:
        """Fail one lease; a delay drawn from the backoff is checked, then adopted."""
        actual: Failed | Status
        try:
            actual = self.q.fail((job_id, token), error, retryable=retryable, delay_ms=delay_ms)
        except LeaseLost:
            actual = Status.LEASE_LOST
        except JobNotFound:
            actual = Status.NOT_FOUND
        retried = isinstance(actual, Failed) and actual.outcome is Outcome.RETRY
        drawn = actual.run_at_ms - self.model.now if isinstance(actual, Failed) and retried else 0
        expected = self.model.fail(
            job_id, token, error, retryable=retryable, delay_ms=delay_ms, drawn_delay_ms=drawn
        )
        agree("fail", actual, expected.answer)
        outcomes("fail", actual if isinstance(actual, Status) else actual.outcome)
        if expected.delay_bounds is not None:
            low, high = expected.delay_bounds
            assert low <= drawn <= high, f"retry delay {drawn} outside [{low}, {high}]"
        if isinstance(actual, Failed) and not actual.repeated:
            self.drop_lease(job_id, token)

    def send_finish(self, action: Callable[[], None]) -> None:
        """Send a complete, fail or release, remembering it so that it can be repeated."""
        self.last_finish = action
        action()

    @rule(refs=st.lists(lease_refs, min_size=1, max_size=2))
    def complete(self, refs: list[tuple[str, int]]) -> None:
        """Complete one or two leases: current, old or made-up tokens."""
        items = [(job_id, token, f"result-{job_id}") for job_id, token in map(self.lease_for, refs)]
        self.send_finish(partial(self.send_complete, items))

    @rule(
        ref=lease_refs,
        retryable=st.sampled_from((True, True, False)),
        delay_ms=st.sampled_from((None, None, None, 0, 200)),
    )
    def fail(self, ref: tuple[str, int], retryable: bool, delay_ms: int | None) -> None:
        """Fail a lease, retryable or not, with the job's backoff or a given delay."""
        job_id, token = self.lease_for(ref)
        error = f"error {self.fresh('e')}"
        self.send_finish(partial(self.send_fail, job_id, token, error, retryable, delay_ms))

    @precondition(lambda self: self.last_finish is not None)
    @rule()
    def repeat_finish(self) -> None:
        """Send the last complete, fail or release again, unchanged (a retry after a lost
        reply)."""
        assert self.last_finish is not None
        self.last_finish()

    def send_release(self, leases: Sequence[LeaseRef]) -> None:
        """Hand leases back in one call."""
        actual = self.q.release(leases)
        agree("release", actual, self.model.release(leases))
        outcomes("release", *(answer.status for answer in actual))
        for (job_id, token), answer in zip(leases, actual, strict=True):
            if answer.status is Status.OK:
                self.drop_lease(job_id, token)

    @rule(refs=st.lists(lease_refs, min_size=1, max_size=2))
    def hand_back(self, refs: list[tuple[str, int]]) -> None:
        """Hand one or two leases back unfinished (a worker shutting down)."""
        leases = [self.lease_for(ref) for ref in refs]
        self.send_finish(partial(self.send_release, leases))

    @rule(refs=st.lists(lease_refs, min_size=1, max_size=2))
    def heartbeat(self, refs: list[tuple[str, int]]) -> None:
        """Extend one or two leases."""
        leases = [self.lease_for(ref) for ref in refs]
        actual = self.q.heartbeat(leases)
        agree("heartbeat", actual, self.model.heartbeat(leases))
        outcomes("heartbeat", f"{len(actual.lost)} of {len(leases)} lost")

    # -- maintenance and administration ----------------------------------------------------

    @rule(limit=st.sampled_from((1, 2, 1000)))
    def reap(self, limit: int) -> None:
        """Run the periodic maintenance, bounded by ``limit``."""
        actual = self.q.reap(limit=limit)
        agree("reap", actual, self.model.reap(limit))
        outcomes("reap", *(name for name, n in asdict(actual).items() if n))

    @rule(pick=picks)
    def cancel(self, pick: int) -> None:
        """Cancel a job (or the ghost)."""
        job_id = self.pick_id(pick)
        actual: CancelAnswer
        try:
            actual = (Status.OK if self.q.cancel(job_id) else Status.DUPLICATE, None)
        except InvalidState as error:
            actual = (Status.BAD_STATE, State(error.state))
        except JobNotFound:
            actual = (Status.NOT_FOUND, None)
        agree("cancel", actual, self.model.cancel(job_id))
        outcomes("cancel", actual[0])

    @rule(chosen=st.lists(picks, max_size=3), limit=st.sampled_from((1, 2, 100)))
    def requeue(self, chosen: list[int], limit: int) -> None:
        """Requeue chosen jobs (repeats allowed), or the oldest ``limit`` dead ones."""
        ids = [self.pick_id(pick) for pick in chosen]
        actual = self.q.requeue(ids, limit=limit)
        agree("requeue", actual, self.model.requeue(ids, limit))
        outcomes("requeue", *(answer.status for answer in actual))

    @rule(
        state=st.sampled_from(FINISHED_STATES),
        chosen=st.lists(picks, max_size=3),
        limit=st.sampled_from((1, 2, 100)),
    )
    def purge(self, state: State, chosen: list[int], limit: int) -> None:
        """Purge chosen jobs of a finished state, or that state's oldest ``limit``."""
        ids = list(dict.fromkeys(self.pick_id(pick) for pick in chosen))
        actual = self.q.purge(state, ids, limit=limit)
        agree("purge", actual, self.model.purge(state, ids, limit))
        outcomes("purge", *(answer.status for answer in actual))

    @rule(to=st.one_of(st.tuples(event_kinds, offsets), clock_steps))
    def move_clock(self, to: int | tuple[str, int]) -> None:
        """Move the queue's clock (and the model's) ahead: by a fixed step, or to the next
        event of a kind (lease deadline, run-at time, record expiry, claim forget time) give or
        take 1 ms, the boundaries where the rules change. Nothing when no such event is ahead."""
        if isinstance(to, tuple):
            kind, offset = to
            at = self.model.next_event_ms(kind)
            if at is None or at + offset <= self.model.now:
                return
            to = at + offset - self.model.now
        advance_clock(self.r, QUEUE, to)
        self.model.advance(to)

    @rule(what=st.sampled_from(DISTURBANCES))
    def disturb(self, what: str) -> None:
        """Something besides the queue's own calls: SCRIPT FLUSH (every later call must reload
        its script and still work); a worker vanishing (its leases are forgotten here, nothing
        is sent); an idle worker taking a wake-up token (what its BLPOP on the wake LIST does)."""
        if what == "script flush":
            self.r.script_flush()
        elif what == "wake token taken":
            taken = self.r.lpop(self.key("wake")) is not None
            agree("wake token taken", taken, self.model.take_wake_token())
        else:
            gone = what.removesuffix(" vanishes")
            self.held = {i: lease for i, lease in self.held.items() if lease.worker != gone}

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def redis_keeps_the_invariants_and_agrees_with_model(self) -> None:
        """After every step, from one reading of Redis: each job in exactly one state set,
        the one its record names; active scores equal deadlines; attempts within budget; every
        record, set, claim record, the wake LIST's length and the stats equal to the model's;
        no job lost."""
        seen = Observed.read(self.q)
        seen.check_one_set_per_job()
        seen.check_active_scores()
        seen.check_attempt_budget()
        seen.check_agrees_with(self.model)
        seen.check_nothing_lost(self.created_ids, self.model.removed)


@dataclass(frozen=True)
class Observed:
    """One reading of a queue: the six state ZSETs, every record (as ``Queue.inspect`` reads
    it), the claim records, the length of the wake LIST and the stats (as ``Queue.stats``
    reads them). Two pipelined round trips: the raw keys, then the scripts."""

    sets: dict[State, list[tuple[str, int]]]
    records: dict[str, JobInfo]
    claims: dict[str, list[LeaseRef]]
    claim_expiry: dict[str, int]
    wake: int
    stats: QueueStats

    @classmethod
    def read(cls, q: Queue) -> Observed:
        """Read everything the invariants need from ``q``'s Redis."""
        key = q.ops.keys.key
        pipe = q.client.pipeline(transaction=False)
        for part in [*SET_PARTS.values(), "claim_exp"]:
            pipe.zrange(key(part), 0, -1, withscores=True)
        pipe.hkeys(key("meta"))
        pipe.hgetall(key("claims"))
        pipe.llen(key("wake"))
        *zsets, meta, raw_claims, wake = pipe.execute()
        scored = [[(member.decode(), int(score)) for member, score in z] for z in zsets]
        ids = sorted(field.decode() for field in meta)
        infos = run_pipelined(q, [*(q.ops.inspect(job_id) for job_id in ids), q.ops.stats()])
        return cls(
            sets=dict(zip(SET_PARTS, scored, strict=False)),
            records=dict(zip(ids, infos, strict=False)),
            claims={cid.decode(): parse_claim(raw.decode()) for cid, raw in raw_claims.items()},
            claim_expiry=dict(scored[-1]),
            wake=wake,
            stats=infos[-1],
        )

    def check_one_set_per_job(self) -> None:
        """Each record's id is in exactly one state ZSET, the one its state names, and every
        member of those ZSETs has a record."""
        holders: dict[str, list[State]] = defaultdict(list)
        for state, members in self.sets.items():
            for job_id, _ in members:
                holders[job_id].append(state)
        agree("ids in the state sets", set(holders), set(self.records))
        for job_id, states in holders.items():
            agree(f"sets holding {job_id}", states, [self.records[job_id].state])

    def check_active_scores(self) -> None:
        """The active ZSET scores each leased job by its record's deadline_ms."""
        for job_id, score in self.sets[State.ACTIVE]:
            agree(f"active score of {job_id}", score, self.records[job_id].deadline_ms)

    def check_attempt_budget(self) -> None:
        """No job has had more leases than max_attempts."""
        for job_id, info in self.records.items():
            assert 0 <= info.attempt <= info.max_attempts, f"{job_id}: {info.attempt} attempts"

    def check_agrees_with(self, model: QueueModel) -> None:
        """Every record, every state ZSET (the ready order included), every claim record, the
        number of wake-up tokens and the stats (counts, oldest waiting job, active jobs) equal
        the model's."""
        agree("job ids", set(self.records), set(model.jobs))
        for job_id, info in self.records.items():
            agree(f"record of {job_id}", info, model.inspect(job_id))
        ready = [job_id for job_id, _ in self.sets[State.WAITING]]
        agree("ready order", ready, model.ordered(State.WAITING))
        for state, members in self.sets.items():
            if state is not State.WAITING:
                agree(f"{state} set", members, model.scored(state))
        agree("claim ids", set(self.claims), set(self.claim_expiry))
        claims = {cid: (leases, self.claim_expiry[cid]) for cid, leases in self.claims.items()}
        agree("claim records", claims, model.claim_records())
        agree("wake tokens", self.wake, model.wake)
        agree("stats", self.stats, model.stats())

    def check_nothing_lost(self, created: set[str], removed: Mapping[str, str]) -> None:
        """Every job ever created still has its record, unless it was purged or trimmed."""
        lost = {i for i in created if i not in self.records and i not in removed}
        assert not lost, f"jobs lost: {sorted(lost)}"


def run_pipelined(q: Queue, calls: Sequence[Call[Any]]) -> list[Any]:
    """Send script calls built by ``q``'s pure core (what ``Queue`` sends, parsed by the same
    parsers) in one pipelined round trip; their parsed answers in order."""
    pipe = q.client.pipeline(transaction=False)
    for call in calls:
        script = q.client.register_script(all_scripts()[call.script].text)
        script(keys=call.keys, args=call.args, client=pipe)
    return [call.parse(reply) for call, reply in zip(calls, pipe.execute(), strict=True)]


def parse_claim(raw: str) -> list[LeaseRef]:
    """A claim record ``"id token,id token"`` as (id, token) pairs."""
    return [(pair.split(" ")[0], pair.split(" ")[1]) for pair in raw.split(",")]


def run_machine(redis_url: str, *, examples: int, steps: int) -> None:
    """Run :class:`QueueMachine` on ``redis_url`` for ``examples`` examples of ``steps``."""
    run_state_machine_as_test(
        cast(Any, partial(QueueMachine, redis_url)),
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_scripts_agree_with_model(redis_url: str) -> None:
    """The default run: 60 examples of up to 40 steps (well under a minute)."""
    run_machine(redis_url, examples=60, steps=40)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(
    os.environ.get("SCHEDULER_SLOW") != "1",
    reason="the long run: set SCHEDULER_SLOW=1 and select it with -m slow",
)
def test_scripts_agree_with_model_long(redis_url: str) -> None:
    """The long run: 500 examples of up to 80 steps. Marked ``slow`` and skipped unless
    ``SCHEDULER_SLOW=1`` is set, so the default run never pays for it:
    ``SCHEDULER_SLOW=1 .venv/bin/python -m pytest tests/property -m slow``."""
    run_machine(redis_url, examples=500, steps=80)
