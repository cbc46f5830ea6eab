"""Model-based property test: the Lua scripts against the reference model, step by step.

A hypothesis ``RuleBasedStateMachine`` drives a real :class:`scheduler.Queue` named ``sm`` on
the test Redis and :class:`tests.property.model.QueueModel` side by side. Every rule sends one
call to both and compares the answers in the client's own types:

* enqueue and enqueue_many (fresh ids, repeated ids, an id twice in one batch), with every
  option drawn over its whole documented range; a *poison payload* enqueued straight through
  the script (an ext type, a map key that is not a string, bytes that are not msgpack, a
  payload over the client's ``max_payload_bytes``), which its claim hands out with
  ``payload_error`` beside the others;
* claim (a lease length given or not, maintenance of every size, now and then through a queue
  whose ``max_call_bytes`` is small, so the byte budget stops the claim), and repeated claims;
* complete, fail, release and heartbeat with current, old and made-up tokens, with and without
  ``started`` reports; their repeats; a result msgpack cannot encode (refused before anything
  is sent, nothing changed);
* reap, cancel, requeue and purge (by id or by limit), requeues and purges repeated with the
  same request id;
* records written over known jobs from outside: an *unreadable* one (corrupt: truncated, empty,
  too long, bad codes, version 0; newer: version 4 and up, an unknown flag), and one of an
  *older version* (1 or 2, the model's view of the job in that layout);
* the clock moving by a step, or to the next event of a kind give or take 1 ms; SCRIPT FLUSH; a
  worker vanishing; an idle worker taking a wake-up token.

After every step the invariant reads Redis once (:class:`Observed`) and checks: every id in
``meta`` is in exactly one of the six state sets, ``stubs`` or ``quarantine``, the one its
record names; active scores equal the lease deadlines; running entries are active started jobs
scored by their deadline, or entries the model knows stand for nothing (a record was planted
over that job); attempts within budget; every record (its bytes), every ZSET with its scores,
the payload, result and error hashes, the request records, the FIFO counter, the wake LIST's
length and ``stats`` equal the model's; and no job was lost (each created job is still there
unless the model says it was purged or trimmed).

Time: each example pins the queue's clock at :data:`T0` (``scheduler.testing.pin_clock``) and
moves it with ``advance_clock``, so the model knows the ``now`` of every script call exactly;
the clock never passes :data:`CLOCK_CAP`, so every time the scripts store fits their 6-byte
fields. A new lease token must look like ``"<attempt>-" + 16 hex digits`` and never repeat; the
model adopts it. Each example seeds the server's Lua PRNG first, so that a replay draws the
same tokens (hypothesis shrinks by replaying).

Runs: :func:`test_scripts_agree_with_model` (200 examples of up to 50 steps, about half a
minute on two cores) in the default run; :func:`test_scripts_agree_with_model_long` (1000
examples of up to 100 steps) is marked ``slow`` and skipped unless ``SCHEDULER_SLOW=1`` is
set: ``SCHEDULER_SLOW=1 pytest -m slow``. Failures the machine finds are kept, shrunk, in
``test_regressions.py``; ``test_paths.py`` drives the machine by hand through the paths random
examples reach only now and then.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import os
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, cast

import msgpack
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
    PayloadError,
    Queue,
    QueueStats,
    RecordUnreadable,
    Retention,
    State,
    Status,
    Unreadable,
    UnreadableRecord,
)
from scheduler._models import DAY_MS
from scheduler._ops import Call
from scheduler._replies import ReplyReader
from scheduler._scripts import all_scripts
from scheduler._validate import MAX_MS, option_args
from scheduler.testing import advance_clock, pin_clock

from . import records
from .model import (
    FINISHED_STATES,
    HOLDING_PARTS,
    SET_PARTS,
    CancelAnswer,
    Inspected,
    JobRow,
    LeaseRef,
    QueueModel,
)

T0 = 1_700_000_000_000
"""The instant each example pins the queue's clock at (Unix ms)."""

CLOCK_CAP = T0 + 20 * MAX_MS
"""The clock never moves past this: a deadline or run-at time MAX_MS later still fits the
records' 6-byte fields (2^47 ms) and a ZSET score's exact doubles."""

QUEUE = "sm"
WORKERS = ("worker-a", "worker-b")
GHOST = "ghost"
"""A job id that is never enqueued."""

MAX_PAYLOAD_BYTES = 256
"""The client's cap on one payload or result (small, so a poison payload over it is cheap)."""

PRNG_SEED = 20_240_601
"""The seed of the scripts' random draws at the start of each example."""

TOKEN_SHAPE = re.compile(r"(\d+)-[0-9a-f]{16}")

ZSET_PARTS = (*HOLDING_PARTS, "running", "unreadable", "request_exp")
HASH_PARTS = ("meta", "payload", "result", "error", "requests")

# -- generators: every option over its whole documented range ------------------------------

BIG_MS = (2**31 - 1, 2**31, 2**32, MAX_MS - 1, MAX_MS)
"""Durations at and above 2^31 ms (where a C int wraps), up to the documented maximum."""

durations = st.one_of(
    st.sampled_from((0, 1, 999, 1000, 1500, 60_000, DAY_MS)),
    st.sampled_from(BIG_MS),
    st.integers(min_value=0, max_value=MAX_MS),
)
"""0..MAX_MS: small and round values, the large ones, and anything between."""

lease_lengths = st.one_of(
    st.sampled_from((1, 1000, 1000, 30_000)),
    st.sampled_from(BIG_MS),
    st.integers(min_value=1, max_value=MAX_MS),
)

job_options = st.builds(
    JobOptions,
    priority=st.one_of(
        st.sampled_from((0, 0, 1000, -1000)), st.integers(min_value=-1000, max_value=1000)
    ),
    delay_ms=st.one_of(st.just(0), st.just(0), durations),
    run_at_ms=st.one_of(
        st.none(),
        st.none(),
        st.none(),
        st.sampled_from((1, T0 - 1, T0, T0 + 1, T0 + 1000, MAX_MS)),
        st.integers(min_value=1, max_value=MAX_MS),
    ),
    max_attempts=st.one_of(
        st.integers(min_value=1, max_value=3),
        st.integers(min_value=1, max_value=3),
        st.just(1000),
        st.integers(min_value=1, max_value=1000),
    ),
    lease_ms=lease_lengths,
    backoff_ms=durations,
    backoff_max_ms=durations,
    jitter=st.one_of(st.sampled_from((0.0, 0.5, 1.0)), st.floats(min_value=0.0, max_value=1.0)),
    keep_result_ms=durations,
    keep_dead_ms=durations,
)

counts_kept = st.one_of(st.integers(min_value=0, max_value=4), st.just(10**9))
retentions = st.builds(
    Retention,
    max_completed=counts_kept,
    max_dead=counts_kept,
    max_cancelled=counts_kept,
    trim_batch=st.sampled_from((0, 1, 2, 3, 1000)),
    repeat_window_ms=st.one_of(
        st.sampled_from((1, 999, 1000, 1500, 60_000, 60_000, DAY_MS, MAX_MS)),
        st.integers(min_value=1, max_value=MAX_MS),
    ),
)
"""Count limits small enough to trim (or none), trim steps from none to all, and a repeat
window shorter and longer than the jobs' keeps."""

call_budgets = st.one_of(
    st.integers(min_value=1, max_value=64), st.integers(min_value=65, max_value=600)
)
"""The max_call_bytes of the second queue: from one byte (one job per claim) to a few jobs."""

picks = st.integers(min_value=0, max_value=63)
"""An index into one of the machine's lists, taken modulo its length (shrinks to the first)."""

lease_refs = st.tuples(st.sampled_from(("held", "held", "held", "issued", "made_up")), picks)
"""Which lease to send: one a worker holds (most often), any token ever issued (an old one,
or the current one), or a made-up one."""

ago_values = st.one_of(
    st.sampled_from((0, 1, 500, 1000)), st.integers(min_value=0, max_value=MAX_MS)
)
"""How long ago a handler began, as a worker reports it."""

reports = st.lists(st.one_of(st.none(), st.none(), ago_values), max_size=2)
"""Per lease sent, whether its handler began and when (None: not reported)."""

payload_sizes = st.sampled_from((0, 0, 8, 60, 200))
"""Padding of a payload, so that byte budgets cut claims at different places."""

queues = st.sampled_from(("main", "main", "main", "small"))
"""Which client sends a claim, enqueue or complete: the main one, or the small-budget one."""

clock_steps = st.one_of(
    st.sampled_from((1, 10, 100, 499, 500, 501, 999, 1000, 1001, 2500, 60_000)),
    st.sampled_from((DAY_MS, 2**31, MAX_MS)),
)
"""Small steps, steps to just before, at and past a short lease or backoff, and large ones."""

event_kinds = st.sampled_from(
    ("deadline", "deadline", "run_at", "expiry", "window", "forget", "memory")
)
"""The kinds of event the clock can be moved to (see QueueModel.next_event_ms)."""

offsets = st.sampled_from((0, 0, -1, 1))
"""Where to stop around an event: at it, 1 ms before, or 1 ms after."""

DISTURBANCES = ("script flush", "worker-a vanishes", "worker-b vanishes", "wake token taken")

POISON: dict[str, bytes] = {
    "ext type": msgpack.packb(msgpack.ExtType(5, b"x")),
    "int map key": msgpack.packb({1: "one"}),
    "not msgpack": b"\xc1",
    "cut short": b"\x92\x01",
    "empty": b"",
    "over the cap": msgpack.packb("x" * (MAX_PAYLOAD_BYTES + 8)),
}
"""Payload bytes this client cannot decode, written straight through the enqueue script."""


@dataclass(frozen=True)
class Unencodable:
    """A dataclass instance: msgpack cannot encode it."""

    n: int


UNENCODABLE: dict[str, Callable[[], Any]] = {
    "set": lambda: {1, 2},
    "datetime": lambda: datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
    "Decimal": lambda: decimal.Decimal("1.5"),
    "dataclass": lambda: Unencodable(1),
    "int map key": lambda: {1: "one"},
}
"""Results the client must refuse before it sends anything."""

CORRUPTIONS = ("truncated", "empty", "too long", "bad state code", "version 0")
NEWER = ("version 4", "version 255", "unknown flag")
OLDER = {"version 1": 1, "version 2": 2}
FINISHED_PARTS = tuple(SET_PARTS[state] for state in FINISHED_STATES)


@dataclass(frozen=True)
class ClaimRequest:
    """One claim call, kept so that it can be sent again unchanged (a repeated call)."""

    via: str
    worker: str
    claim_id: str
    count: int
    maintenance: int
    lease_ms: int | None


@dataclass(frozen=True)
class AdminRequest:
    """One requeue or purge, kept so that it can be sent again with the same request id."""

    request_id: str
    state: State | None
    ids: tuple[str, ...]
    limit: int


@dataclass(frozen=True)
class HeldLease:
    """A lease some worker believes it holds."""

    job_id: str
    token: str
    worker: str


def seed_script_prng(client: redis.Redis, seed: int) -> None:
    """Seed the server's Lua PRNG (one per server, shared by every script), so that the
    random draws of an example (token nonces) are the same on every replay: hypothesis needs
    a replayed example to take the same path to shrink it. A server that refuses
    ``math.randomseed`` is left alone (its draws then vary between replays)."""
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


def corrupted(record: bytes, how: str, cut: int) -> bytes:
    """A record no version can read, made from ``record`` (a version 3 record or stub)."""
    if how == "truncated":
        return record[: cut % len(record)]
    if how == "empty":
        return b""
    if how == "too long":
        return record + b"\x00"
    if how == "bad state code":
        return record[:2] + b"\x09" + record[3:]
    return b"\x00" + record[1:]  # version 0


def newer(record: bytes, how: str) -> bytes:
    """A record of a newer version than the scripts know, made from a version 3 one."""
    if how == "version 4":
        return b"\x04" + record[1:]
    if how == "version 255":
        return b"\xff" + record[1:]
    return record[:1] + bytes([record[1] | 0x80]) + record[2:]  # an unknown flag


class QueueMachine(RuleBasedStateMachine):
    """A queue on a real Redis and its reference model, driven together."""

    def __init__(self, redis_url: str) -> None:
        super().__init__()
        self.r = redis.Redis.from_url(redis_url, socket_timeout=10)
        self.retention = Retention()
        self.q = Queue(self.r, QUEUE, max_payload_bytes=MAX_PAYLOAD_BYTES)
        self.small = self.q
        self.model = QueueModel(QUEUE, T0, self.retention, MAX_PAYLOAD_BYTES)
        self.scripts: dict[str, Any] = {}
        self.counter = 0
        self.known_ids: list[str] = []
        self.created_ids: set[str] = set()
        self.held: dict[str, HeldLease] = {}
        self.issued: list[LeaseRef] = []
        self.claims_sent: list[ClaimRequest] = []
        self.admin_sent: list[AdminRequest] = []
        self.last_finish: Callable[[], None] | None = None

    # -- bookkeeping -----------------------------------------------------------------------

    def fresh(self, prefix: str) -> str:
        """A new name: ``prefix`` and a number unique in this example."""
        self.counter += 1
        return f"{prefix}{self.counter}"

    def key(self, part: str) -> str:
        """The full name of one of the queue's keys."""
        return self.q.ops.keys.key(part)

    def client(self, via: str) -> Queue:
        """The main queue client, or the one with a small byte budget per call."""
        return self.small if via == "small" else self.q

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

    def started_map(self, leases: Sequence[LeaseRef], ago: Sequence[int | None]) -> dict[str, int]:
        """The ``started`` argument of a heartbeat or release: token -> ms ago, for the leases
        whose report is not None."""
        return {
            token: when for (_, token), when in zip(leases, ago, strict=False) if when is not None
        }

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

    def send(self, call: Call[Any]) -> tuple[Any, Any]:
        """Send a call built by the client's pure core as the client does; the raw reply and
        its parsed answer (an error the parser raises is raised)."""
        script = self.scripts.get(call.script)
        if script is None:
            script = self.r.register_script(all_scripts()[call.script].text)
            self.scripts[call.script] = script
        reply = script(keys=call.keys, args=call.args)
        return reply, call.parse(reply)

    # -- setup -----------------------------------------------------------------------------

    @initialize(
        first_jobs=st.lists(job_options, min_size=1, max_size=4),
        retention=retentions,
        budget=call_budgets,
    )
    def start(
        self,
        first_jobs: list[JobOptions],
        retention: Retention | None = None,
        budget: int = 100,
    ) -> None:
        """An empty database, the queue's clock pinned at T0, the scripts' PRNG seeded, the
        example's retention and small byte budget; then the first jobs enqueued (so that early
        claims find work)."""
        self.r.flushdb()
        pin_clock(self.r, QUEUE, T0)
        seed_script_prng(self.r, PRNG_SEED)
        self.retention = retention or Retention(
            max_completed=3, max_dead=3, max_cancelled=2, trim_batch=2
        )
        self.q = Queue(self.r, QUEUE, retention=self.retention, max_payload_bytes=MAX_PAYLOAD_BYTES)
        self.small = Queue(
            self.r,
            QUEUE,
            retention=self.retention,
            max_payload_bytes=MAX_PAYLOAD_BYTES,
            max_call_bytes=budget,
        )
        self.model = QueueModel(QUEUE, T0, self.retention, MAX_PAYLOAD_BYTES)
        for options in first_jobs:
            self.send_enqueue("main", [self.fresh("j")], [options], 0)

    def teardown(self) -> None:
        """Close the machine's connection."""
        self.r.close()

    # -- enqueue ---------------------------------------------------------------------------

    def send_enqueue(
        self, via: str, ids: Sequence[str], options: Sequence[JobOptions], pad: int
    ) -> None:
        """Enqueue ``ids`` (one call: enqueue for one job, enqueue_many for more, which the
        client splits by its byte budget)."""
        q = self.client(via)
        specs = [
            JobSpec({"n": self.fresh("p"), "pad": "x" * pad}, job_id, options[n % len(options)])
            for n, job_id in enumerate(ids)
        ]
        rows: list[JobRow] = [
            (s.id or "", q.ops.encode(s.payload), options[n % len(options)])
            for n, s in enumerate(specs)
        ]
        if len(specs) == 1:
            actual = [q.enqueue(specs[0].payload, id=specs[0].id, options=specs[0].options)]
        else:
            actual = q.enqueue_many(specs)
        expected = self.model.enqueue_many(rows, q.ops.max_call_bytes)
        agree("enqueue", actual, expected)
        self.note_enqueued(actual)

    def note_enqueued(self, answers: Sequence[Any]) -> None:
        """Remember the ids enqueued (and which were created)."""
        outcomes("enqueue", *(f"created={a.created} {a.state}" for a in answers))
        for answer in answers:
            if answer.id not in self.known_ids:
                self.known_ids.append(answer.id)
            if answer.created:
                self.created_ids.add(answer.id)

    @rule(options=job_options, reuse=st.none() | picks, pad=payload_sizes, via=queues)
    def enqueue(
        self, options: JobOptions, reuse: int | None, pad: int = 0, via: str = "main"
    ) -> None:
        """Enqueue one job under a fresh id, or under an id used before (a duplicate, or a
        new job when the old one is gone)."""
        if reuse is not None and self.known_ids:
            job_id = self.known_ids[reuse % len(self.known_ids)]
        else:
            job_id = self.fresh("j")
        self.send_enqueue(via, [job_id], [options], pad)

    @rule(
        options=st.lists(job_options, min_size=1, max_size=3),
        copy_of=picks,
        insert_at=picks,
        reuse=st.none() | picks,
        pad=payload_sizes,
        via=queues,
    )
    def enqueue_batch(
        self,
        options: list[JobOptions],
        copy_of: int,
        insert_at: int,
        reuse: int | None,
        pad: int = 0,
        via: str = "main",
    ) -> None:
        """Enqueue a batch of fresh ids holding one id twice, and maybe one known id."""
        ids = [self.fresh("j") for _ in options]
        ids.insert(insert_at % (len(ids) + 1), ids[copy_of % len(ids)])
        if reuse is not None and self.known_ids:
            ids.append(self.known_ids[reuse % len(self.known_ids)])
        self.send_enqueue(via, ids, options, pad)

    @rule(kind=st.sampled_from(sorted(POISON)), options=job_options, reuse=st.none() | picks)
    def enqueue_poison(self, kind: str, options: JobOptions, reuse: int | None) -> None:
        """Enqueue a payload this client cannot decode, straight through the enqueue script
        (as another client, or an older one, might)."""
        job_id = self.fresh("x")
        if reuse is not None and self.known_ids:
            job_id = self.known_ids[reuse % len(self.known_ids)]
        payload = POISON[kind]
        args: tuple[int | str | bytes, ...] = (1, *option_args(options), 1, job_id, payload, 1)
        keys = self.q.ops.keys.keys(all_scripts()["enqueue"].key_parts)
        reader = ReplyReader(QUEUE, MAX_PAYLOAD_BYTES)
        _, actual = self.send(Call("enqueue", keys, args, reader.enqueued))
        agree("poison enqueue", actual, self.model.enqueue_many([(job_id, payload, options)], 1))
        self.note_enqueued(actual)
        outcomes("poison", kind)

    # -- leases ----------------------------------------------------------------------------

    def send_claim(self, request: ClaimRequest) -> None:
        """Send one claim; the tokens of new leases are checked, then adopted by the model."""
        q = self.client(request.via)
        actual = q.claim(
            request.worker,
            count=request.count,
            claim_id=request.claim_id,
            maintenance=request.maintenance,
            lease_ms=request.lease_ms,
        )
        if not actual.repeated:
            self.check_new_tokens(actual.jobs)
        tokens = {job.id: job.token for job in actual.jobs}
        expected = self.model.claim(
            request.worker,
            request.claim_id,
            request.count,
            maintenance=request.maintenance,
            lease_ms=request.lease_ms,
            max_bytes=q.ops.max_call_bytes,
            tokens=tokens,
        )
        agree("claim", actual, expected)
        outcomes(
            "claim",
            f"{len(actual.jobs)} jobs, repeated={actual.repeated}, via {request.via}",
            *(f"payload_error {bool(job.payload_error)}" for job in actual.jobs),
        )
        for job in actual.jobs:
            self.held[job.id] = HeldLease(job.id, job.token, request.worker)

    @rule(
        worker=st.sampled_from(WORKERS),
        count=st.integers(min_value=1, max_value=4),
        maintenance=st.sampled_from((100, 100, 1, 2, 0)),
        repeat=st.none() | picks,
        via=queues,
        lease_ms=st.one_of(st.none(), st.none(), lease_lengths),
    )
    def claim(
        self,
        worker: str,
        count: int,
        maintenance: int,
        repeat: int | None,
        via: str = "main",
        lease_ms: int | None = None,
    ) -> None:
        """Claim up to ``count`` jobs under a fresh claim id (its lease length given or the
        jobs' own); or send an earlier claim again, unchanged (a retry after a lost reply)."""
        if repeat is not None and self.claims_sent:
            self.send_claim(self.claims_sent[repeat % len(self.claims_sent)])
            return
        request = ClaimRequest(via, worker, self.fresh("c"), count, maintenance, lease_ms)
        self.claims_sent.append(request)
        self.send_claim(request)

    @rule(
        worker=st.sampled_from(WORKERS),
        count=st.integers(min_value=1, max_value=4),
        via=queues,
    )
    def claim_more(self, worker: str, count: int, via: str) -> None:
        """Claim under a fresh claim id with the default maintenance (a second rule, so that
        claims are frequent whichever rules an example leaves out)."""
        self.claim(worker, count, 100, None, via)

    def send_complete(self, via: str, items: Sequence[tuple[str, str, Any]]) -> None:
        """Complete (id, token, result) items (split by the client's byte budget)."""
        q = self.client(via)
        actual = q.complete_many([((i, t), result) for i, t, result in items])
        encoded = [(i, t, q.ops.encode(result, "result")) for i, t, result in items]
        agree("complete", actual, self.model.complete_many(encoded, q.ops.max_call_bytes))
        outcomes("complete", *(answer.status for answer in actual))
        for (job_id, token, _), answer in zip(items, actual, strict=True):
            if answer.status is Status.OK:
                self.drop_lease(job_id, token)

    def send_fail(
        self, job_id: str, token: str, error: str, retryable: bool, delay_ms: int | None
    ) -> None:
        """Fail one lease."""
        actual: Failed | Status
        try:
            actual = self.q.fail((job_id, token), error, retryable=retryable, delay_ms=delay_ms)
        except LeaseLost:
            actual = Status.LEASE_LOST
        except JobNotFound:
            actual = Status.NOT_FOUND
        except RecordUnreadable:
            actual = Status.UNREADABLE
        expected = self.model.fail(job_id, token, error, retryable=retryable, delay_ms=delay_ms)
        agree("fail", actual, expected)
        outcomes("fail", actual if isinstance(actual, Status) else actual.outcome)
        if isinstance(actual, Failed) and not actual.repeated:
            self.drop_lease(job_id, token)

    def send_finish(self, action: Callable[[], None]) -> None:
        """Send a complete, fail or release, remembering it so that it can be repeated."""
        self.last_finish = action
        action()

    @rule(
        refs=st.lists(lease_refs, min_size=1, max_size=2),
        results=st.sampled_from(("text", "none", "nested")),
        via=queues,
        unencodable=st.one_of(
            st.none(), st.none(), st.none(), st.sampled_from(sorted(UNENCODABLE))
        ),
    )
    def complete(
        self,
        refs: list[tuple[str, int]],
        results: str = "text",
        via: str = "main",
        unencodable: str | None = None,
    ) -> None:
        """Complete one or two leases: current, old or made-up tokens. Or, now and then, with
        a result msgpack cannot encode (last in the batch): PayloadError before anything is
        sent, so nothing changes (the invariant checks Redis against the unchanged model)."""
        leases = [self.lease_for(ref) for ref in refs]
        values: Callable[[str], Any] = {
            "text": lambda job_id: f"result-{job_id}",
            "none": lambda job_id: None,
            "nested": lambda job_id: {"id": job_id, "list": [1, 2.5, b"\x00", True]},
        }[results]
        items = [(job_id, token, values(job_id)) for job_id, token in leases]
        if unencodable is not None:
            job_id, token, _ = items[-1]
            items[-1] = (job_id, token, UNENCODABLE[unencodable]())
            with pytest.raises(PayloadError):
                if len(items) == 1:
                    self.client(via).complete((job_id, token), items[0][2])
                else:
                    self.client(via).complete_many([((i, t), v) for i, t, v in items])
            outcomes("unencodable result", unencodable)
            return
        self.send_finish(partial(self.send_complete, via, items))

    @rule(
        ref=lease_refs,
        retryable=st.sampled_from((True, True, False)),
        delay_ms=st.one_of(st.none(), st.none(), st.none(), st.just(0), durations),
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

    @precondition(lambda self: bool(self.held))
    @rule(
        pick=picks,
        action=st.sampled_from(("complete", "complete", "fail", "release", "heartbeat")),
        ago=st.one_of(st.none(), ago_values, ago_values),
    )
    def finish_held(self, pick: int, action: str, ago: int | None = 0) -> None:
        """What a worker does with a lease it holds (pick 0: the newest): complete it, fail
        it (its backoff), hand it back or heartbeat it, reporting its start or not."""
        lease = list(reversed(self.held.values()))[pick % len(self.held)]
        ref = (lease.job_id, lease.token)
        started = {} if ago is None else {lease.token: ago}
        if action == "complete":
            self.send_finish(partial(self.send_complete, "main", [(*ref, "done")]))
        elif action == "fail":
            error = f"error {self.fresh('e')}"
            self.send_finish(partial(self.send_fail, *ref, error, True, None))
        elif action == "release":
            self.send_finish(partial(self.send_release, [ref], started))
        else:
            self.send_heartbeat([ref], None, started)

    def send_release(self, leases: Sequence[LeaseRef], started: Mapping[str, int]) -> None:
        """Hand leases back in one call."""
        actual = self.q.release(leases, started=started)
        agree("release", actual, self.model.release(leases, started=started))
        outcomes("release", *(answer.status for answer in actual))
        for (job_id, token), answer in zip(leases, actual, strict=True):
            if answer.status is Status.OK:
                self.drop_lease(job_id, token)

    @rule(refs=st.lists(lease_refs, min_size=1, max_size=2), ago=reports)
    def hand_back(self, refs: list[tuple[str, int]], ago: list[int | None] | None = None) -> None:
        """Hand one or two leases back unfinished (a worker shutting down), reporting for
        some that their handler began."""
        leases = [self.lease_for(ref) for ref in refs]
        started = self.started_map(leases, ago or [])
        self.send_finish(partial(self.send_release, leases, started))

    @rule(
        refs=st.lists(lease_refs, min_size=1, max_size=2),
        ago=reports,
        lease_ms=st.one_of(st.none(), st.none(), lease_lengths),
    )
    def heartbeat(
        self, refs: list[tuple[str, int]], ago: list[int | None], lease_ms: int | None
    ) -> None:
        """Extend one or two leases, reporting for some that their handler began."""
        leases = [self.lease_for(ref) for ref in refs]
        self.send_heartbeat(leases, lease_ms, self.started_map(leases, ago))

    def send_heartbeat(
        self, leases: Sequence[LeaseRef], lease_ms: int | None, started: Mapping[str, int]
    ) -> None:
        """Extend leases in one call."""
        actual = self.q.heartbeat(leases, lease_ms=lease_ms, started=started)
        expected = self.model.heartbeat(leases, lease_ms=lease_ms, started=started)
        agree("heartbeat", actual, expected)
        outcomes("heartbeat", f"{len(actual.lost)} of {len(leases)} lost, {len(started)} started")

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
        except RecordUnreadable:
            actual = (Status.UNREADABLE, None)
        agree("cancel", actual, self.model.cancel(job_id))
        outcomes("cancel", actual[0])

    def send_admin(self, request: AdminRequest) -> None:
        """Send a requeue (``state`` None) or a purge; the reply's status says whether it
        repeated an earlier request, and the list is the first call's either way."""
        ops = self.q.ops
        if request.state is None:
            call = ops.requeue(request.ids, limit=request.limit, request_id=request.request_id)
            expected = self.model.requeue(request.request_id, request.ids, request.limit)
        else:
            call = ops.purge(
                request.state, request.ids, limit=request.limit, request_id=request.request_id
            )
            expected = self.model.purge(
                request.request_id, request.state, request.ids, request.limit
            )
        reply, actual = self.send(call)
        what = "requeue" if request.state is None else f"purge {request.state}"
        status = Status(reply[0].decode())
        agree(what, (status, actual), expected)
        agree(f"{what}: count", int(reply[1]), sum(a.status is Status.OK for a in actual))
        outcomes(what, status, *(answer.status for answer in actual))

    @rule(
        chosen=st.lists(picks, max_size=3),
        limit=st.sampled_from((1, 2, 100)),
        repeat=st.none() | picks,
    )
    def requeue(self, chosen: list[int], limit: int, repeat: int | None = None) -> None:
        """Requeue chosen jobs (repeats allowed), or the oldest ``limit`` dead ones; or send an
        earlier requeue or purge again with its request id."""
        if repeat is not None and self.admin_sent:
            self.send_admin(self.admin_sent[repeat % len(self.admin_sent)])
            return
        ids = tuple(self.pick_id(pick) for pick in chosen)
        request = AdminRequest(self.fresh("rq"), None, ids, limit)
        self.admin_sent.append(request)
        self.send_admin(request)

    @rule(
        state=st.sampled_from(FINISHED_STATES),
        chosen=st.lists(picks, max_size=3),
        limit=st.sampled_from((1, 2, 100)),
    )
    def purge(self, state: State, chosen: list[int], limit: int) -> None:
        """Purge chosen jobs of a finished state (repeats allowed), or that state's oldest
        ``limit``."""
        ids = tuple(self.pick_id(pick) for pick in chosen)
        request = AdminRequest(self.fresh("rq"), state, ids, limit)
        self.admin_sent.append(request)
        self.send_admin(request)

    # -- records written from outside ------------------------------------------------------

    def readable_ids(self, where: str, *, stubs: bool) -> list[str]:
        """The ids of the jobs whose record the scripts read (stubs among them or not), in
        the ZSET ``where`` if any is ("any": wherever they are), the started ones if any is
        (so that a planted record leaves a running entry behind)."""
        pool = sorted(i for i, j in self.model.jobs.items() if j.readable and (stubs or not j.stub))
        there = [i for i in pool if self.model.jobs[i].part() == where]
        started = [i for i in there if self.model.jobs[i].started_ms > 0]
        return started or there or pool

    @rule(
        pick=picks,
        how=st.sampled_from((*CORRUPTIONS, *NEWER, *OLDER, *OLDER)),
        cut=st.integers(min_value=0, max_value=200),
        where=st.sampled_from(("any", "active", "active", "delayed", *FINISHED_PARTS, "stubs")),
    )
    def plant(self, pick: int, how: str, cut: int = 0, where: str = "any") -> None:
        """Write a record over a known job's (it stays in its set): a corrupt one, one of a
        newer version, or the job's own record as a worker of version 1 or 2 writes it (a
        rolling upgrade or a rollback), which the scripts read and write back as version 3.
        Over a job in ``where`` when there is one."""
        pool = self.readable_ids(where, stubs=how not in OLDER)  # older versions: no stubs
        if pool:
            self.plant_record(pool[pick % len(pool)], how, cut)

    def plant_record(self, job_id: str, how: str, cut: int = 0) -> None:
        """Write a record (``how``: one of CORRUPTIONS, NEWER or OLDER) over ``job_id``'s."""
        job = self.model.jobs[job_id]
        outcomes("plant", f"{how} over {job.part()}")
        if how in OLDER:
            record = self.model.plant_older(job_id, OLDER[how])
            self.r.hset(self.key("meta"), job_id, record)
            return
        base = records.encode_stub(job.fields()) if job.stub else records.encode(job.fields())
        if how in CORRUPTIONS:
            record, why = corrupted(base, how, cut), Unreadable.CORRUPT
        else:
            record, why = newer(base, how), Unreadable.NEWER
        self.r.hset(self.key("meta"), job_id, record)
        self.model.plant_unreadable(job_id, record, why)

    # -- time and disturbances -------------------------------------------------------------

    @rule(to=st.one_of(st.tuples(event_kinds, offsets), clock_steps))
    def move_clock(self, to: int | tuple[str, int]) -> None:
        """Move the queue's clock (and the model's) ahead: by a fixed step, or to the next
        event of a kind (see QueueModel.next_event_ms) give or take 1 ms, the boundaries where
        the rules change. Nothing when no such event is ahead, or past :data:`CLOCK_CAP`."""
        if isinstance(to, tuple):
            kind, offset = to
            at = self.model.next_event_ms(kind)
            if at is None or at + offset <= self.model.now:
                return
            to = at + offset - self.model.now
        if self.model.now + to > CLOCK_CAP:
            return
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
        """After every step, from one reading of Redis: each record's id in exactly one of
        the state sets, the stubs or the quarantine, the one its record names; active scores
        equal deadlines; running entries stand for active started jobs (or are known to stand
        for nothing); attempts within budget; every record, set, hash, request record, the
        FIFO counter, the wake LIST's length and the stats equal to the model's; no job lost."""
        outcomes("path", *self.model.notes)
        self.model.notes.clear()
        seen = Observed.read(self.q)
        seen.check_one_set_per_job()
        seen.check_active_and_running_scores(self.model.disturbed)
        seen.check_attempt_budget()
        seen.check_agrees_with(self.model)
        seen.check_nothing_lost(self.created_ids, self.model)


@dataclass(frozen=True)
class Observed:
    """One reading of a queue: every ZSET with its scores, every hash, the wake LIST's length
    and the FIFO counter (one pipelined round trip), then every record as ``Queue.inspect``
    reads it and the stats (a second one, of read-only scripts)."""

    zsets: dict[str, list[tuple[str, int]]]
    hashes: dict[str, dict[str, bytes]]
    wake: int
    seq: int
    records: dict[str, Inspected]
    stats: QueueStats

    @classmethod
    def read(cls, q: Queue) -> Observed:
        """Read everything the invariants need from ``q``'s Redis."""
        key = q.ops.keys.key
        pipe = q.client.pipeline(transaction=False)
        for part in ZSET_PARTS:
            pipe.zrange(key(part), 0, -1, withscores=True)
        for part in HASH_PARTS:
            pipe.hgetall(key(part))
        pipe.llen(key("wake"))
        pipe.get(key("seq"))
        *replies, wake, seq = pipe.execute()
        zsets = {
            part: [(member.decode(), int(score)) for member, score in z]
            for part, z in zip(ZSET_PARTS, replies, strict=False)
        }
        hashes = {
            part: {name.decode(): value for name, value in h.items()}
            for part, h in zip(HASH_PARTS, replies[len(ZSET_PARTS) :], strict=True)
        }
        ids = sorted(hashes["meta"])
        infos = run_pipelined(q, [*(q.ops.inspect(job_id) for job_id in ids), q.ops.stats()])
        return cls(
            zsets=zsets,
            hashes=hashes,
            wake=wake,
            seq=int(seq or 0),
            records=dict(zip(ids, infos, strict=False)),
            stats=infos[-1],
        )

    def check_one_set_per_job(self) -> None:
        """Each record's id is in exactly one of the state ZSETs, the stubs or the quarantine:
        for a readable record the one its state names (the stubs for a stub), for an unreadable
        one the quarantine exactly when it was quarantined; and every member of those ZSETs
        has a record."""
        holders: dict[str, list[str]] = defaultdict(list)
        for part in HOLDING_PARTS:
            for job_id, _ in self.zsets[part]:
                holders[job_id].append(part)
        agree("ids in the state sets, stubs and quarantine", set(holders), set(self.records))
        for job_id, parts in holders.items():
            info = self.records[job_id]
            if isinstance(info, JobInfo):
                expected = "stubs" if info.stub else SET_PARTS[info.state]
                agree(f"sets holding {job_id}", parts, [expected])
            else:
                assert len(parts) == 1, f"{job_id} is in {parts}"
                quarantined = parts == ["quarantine"]
                agree(f"{job_id} quarantined", quarantined, info.quarantined_ms is not None)

    def check_active_and_running_scores(self, disturbed: set[str]) -> None:
        """The active ZSET scores each leased job by its record's deadline_ms; each running
        entry is an active job whose start was reported, scored by its deadline, unless a
        record was planted over that job (its entry may then stand for nothing)."""
        for job_id, score in self.zsets["active"]:
            info = self.records[job_id]
            if isinstance(info, JobInfo):
                agree(f"active score of {job_id}", score, info.deadline_ms)
        for job_id, score in self.zsets["running"]:
            entry = self.records.get(job_id)
            fits = (
                isinstance(entry, JobInfo)
                and entry.state is State.ACTIVE
                and entry.started_ms > 0
                and entry.deadline_ms == score
            )
            assert fits or job_id in disturbed, f"running entry {job_id} at {score}: {entry}"

    def check_attempt_budget(self) -> None:
        """No job has had more leases than max_attempts."""
        for job_id, info in self.records.items():
            if isinstance(info, JobInfo):
                assert 0 <= info.attempt <= info.max_attempts, f"{job_id}: {info.attempt} attempts"

    def check_agrees_with(self, model: QueueModel) -> None:
        """Every record (its bytes and what inspect reads), every ZSET with its scores, the
        payload, result and error hashes, the request records, the FIFO counter, the number
        of wake-up tokens and the stats equal the model's."""
        agree("job ids", set(self.records), set(model.jobs))
        for job_id, info in self.records.items():
            agree(
                f"stored record of {job_id}",
                self.hashes["meta"][job_id],
                model.jobs[job_id].record(),
            )
            agree(f"record of {job_id}", info, model.inspect(job_id))
        for part in HOLDING_PARTS:
            agree(f"{part} set", self.zsets[part], model.members(part))
        agree("running set", dict(self.zsets["running"]), model.running)
        agree("unreadable set", dict(self.zsets["unreadable"]), model.unreadable_seen)
        agree("request expiry", dict(self.zsets["request_exp"]), model.request_exp)
        requests = {rid: value.decode() for rid, value in self.hashes["requests"].items()}
        agree("request records", requests, model.requests)
        jobs = model.jobs.values()
        agree(
            "payloads",
            self.hashes["payload"],
            {j.id: j.payload for j in jobs if j.payload is not None},
        )
        agree(
            "results", self.hashes["result"], {j.id: j.result for j in jobs if j.result is not None}
        )
        errors = {job_id: text.decode() for job_id, text in self.hashes["error"].items()}
        agree("errors", errors, {j.id: j.error for j in jobs if j.error is not None})
        agree("FIFO counter", self.seq, model.seq)
        agree("wake tokens", self.wake, model.wake)
        agree("stats", self.stats, model.stats())

    def check_nothing_lost(self, created: set[str], model: QueueModel) -> None:
        """Every job ever created still has its record (in quarantine, maybe), unless the
        model says it was purged or trimmed."""
        lost = {i for i in created if i not in self.records and i not in model.removed}
        assert not lost, f"jobs lost: {sorted(lost)}"
        quarantined = {job_id for job_id, _ in self.zsets["quarantine"]}
        expected = {i for i, j in model.jobs.items() if j.quarantined_ms is not None}
        agree("quarantined jobs", quarantined, expected)


def run_pipelined(q: Queue, calls: Sequence[Call[Any]]) -> list[Any]:
    """Send script calls built by ``q``'s pure core (what ``Queue`` sends, parsed by the same
    parsers) in one pipelined round trip; their parsed answers in order. An unreadable record
    is given as the :class:`UnreadableRecord` its :class:`RecordUnreadable` carries."""
    pipe = q.client.pipeline(transaction=False)
    for call in calls:
        script = q.client.register_script(all_scripts()[call.script].text)
        script(keys=call.keys, args=call.args, client=pipe)
    answers = []
    for call, reply in zip(calls, pipe.execute(), strict=True):
        try:
            answers.append(call.parse(reply))
        except RecordUnreadable as error:
            assert isinstance(error.record, UnreadableRecord)
            answers.append(error.record)
    return answers


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
    """The default run: 200 examples of up to 50 steps (about half a minute)."""
    run_machine(redis_url, examples=200, steps=50)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(
    os.environ.get("SCHEDULER_SLOW") != "1",
    reason="the long run: set SCHEDULER_SLOW=1 and select it with -m slow",
)
def test_scripts_agree_with_model_long(redis_url: str) -> None:
    """The long run: 1000 examples of up to 100 steps. Marked ``slow`` and skipped unless
    ``SCHEDULER_SLOW=1`` is set, so the default run never pays for it:
    ``SCHEDULER_SLOW=1 .venv/bin/python -m pytest tests/property -m slow``."""
    run_machine(redis_url, examples=1000, steps=100)
