"""The worker core without Redis, threads or clocks: events in, actions out (every time is given).

Each test drives :class:`WorkerCore` the way a shell does and checks what it asks for: claims
(clamped, in batches), runs, acknowledgements (per item), heartbeats (chunked, with the
``started`` report), reaping, time limits, lost leases, the stop's phases and a helper's failure.
"""

from __future__ import annotations

import datetime
import itertools
import logging
import math
import random
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, TypeVar

import pytest
import redis
import redis.asyncio

from scheduler import ConfigError, Failed, Heartbeat, ItemStatus, Job, LeaseLost, Outcome, Status
from scheduler._codec import encode
from scheduler._models import Claimed
from scheduler._worker_actions import (
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
from scheduler._worker_actions import Heartbeat as Beat
from scheduler._worker_context import (
    Errored,
    Interrupted,
    JobContext,
    NonRetryable,
    Succeeded,
    WorkerSettings,
    default_worker_id,
    describe_error,
    error_outcome,
    result_outcome,
)
from scheduler._worker_core import (
    HAND_BACK_S,
    REAP_INTERVAL_S,
    REAP_LIMIT,
    Phase,
    WorkerCore,
    heartbeat_interval_s,
    idle_wait_s,
)
from scheduler.aio import AsyncQueue
from scheduler.aio_worker import AsyncWorker
from scheduler.client import Queue
from scheduler.worker import Worker

A = TypeVar("A")
NOW_MS = 1_700_000_000_000
LEASE_MS = 30_000


def settings(**changes: Any) -> WorkerSettings:
    values: dict[str, Any] = {
        "concurrency": 2,
        "prefetch": 2,
        "worker_id": "w1",
        "lease_ms": None,
        "time_limit_ms": None,
        "grace_s": 5.0,
        "max_idle_s": 5.0,
    }
    values.update(changes)
    return WorkerSettings(**values)


def make_core(**changes: Any) -> WorkerCore:
    ids = (f"claim-{n}" for n in itertools.count())
    return WorkerCore(settings(**changes), rng=random.Random(7), new_claim_id=lambda: next(ids))


_serial = itertools.count()


def job(payload: Any = "p", *, lease_ms: int = LEASE_MS, payload_error: str | None = None) -> Job:
    n = next(_serial)
    return Job("q", f"job-{n}", payload, 1, f"1-tok{n}", NOW_MS + lease_ms, payload_error)


def claimed(jobs: Sequence[Job], next_ms: int | None = None) -> Claimed:
    return Claimed(list(jobs), NOW_MS, next_ms=next_ms)


def only(actions: Sequence[Action], kind: type[A]) -> list[A]:
    return [a for a in actions if isinstance(a, kind)]


def one(actions: Sequence[Action], kind: type[A]) -> A:
    found = only(actions, kind)
    assert len(found) == 1, f"one {kind.__name__} expected in {actions}"
    return found[0]


def ok(contexts: Sequence[JobContext], status: Status = Status.OK) -> list[ItemStatus]:
    return [ItemStatus(c.job.id, status) for c in contexts]


class Driver:
    """A core with the bookkeeping a shell would do: it claims, starts and finishes jobs."""

    def __init__(self, **changes: Any) -> None:
        self.core = make_core(**changes)
        self.now = 100.0
        self.first = self.core.start(self.now)

    def claim(self, action: Claim, jobs: Sequence[Job], next_ms: int | None = None) -> list[Action]:
        return self.core.claimed(action, claimed(jobs, next_ms), self.now)

    def start(self, run: Run) -> list[Action]:
        return self.core.started(run.context, self.now)

    def finish(self, context: JobContext, result: Any = "ok") -> list[Action]:
        return self.core.finished(context, Succeeded(encode(result)), self.now)  # type: ignore[arg-type]

    def running(self, count: int, **job_options: Any) -> tuple[list[JobContext], list[Action]]:
        """Claim ``count`` jobs and start each; their contexts and the claim's actions."""
        claim = one(self.first, Claim)
        actions = self.claim(claim, [job(**job_options) for _ in range(count)])
        contexts = []
        for run in only(actions, Run):
            self.start(run)
            contexts.append(run.context)
        return contexts, actions

    def at(self, seconds_later: float) -> None:
        self.now += seconds_later


# -- claims -----------------------------------------------------------------------------------


def test_the_first_claim_asks_for_the_whole_room_clamped_to_1000() -> None:
    assert one(make_core(concurrency=3, prefetch=2).start(0.0), Claim).count == 5
    assert one(make_core(concurrency=1500, prefetch=1500).start(0.0), Claim).count == 1000


def test_a_large_worker_claims_in_calls_of_1000_until_its_room_is_full() -> None:
    core = make_core(concurrency=1500, prefetch=1500)
    claim = one(core.start(0.0), Claim)
    counts, runs = [], []
    while claim is not None:
        counts.append(claim.count)
        actions = core.claimed(claim, claimed([job() for _ in range(claim.count)]), 0.0)
        runs += only(actions, Run)
        claim = next(iter(only(actions, Claim)), None)
    assert counts == [1000, 1000], "claims again at once while a runner is idle"
    assert len(runs) == 1500 and core.held == 2000, "the rest waits for a runner"
    core.started(runs[0].context, 0.0)
    third = one(core.finished(runs[0].context, Succeeded(encode(1)), 0.0), Claim)  # type: ignore[arg-type]
    assert core.refresh(third, 0.0).count == 1000, "sized when sent: the room, clamped"


def test_a_claim_is_sized_when_sent_and_a_batch_of_results_filled_up() -> None:
    d = Driver(concurrency=4, prefetch=4)
    contexts, _ = d.running(8)
    first = one(d.finish(contexts[0]), Complete)
    for context in contexts[1:4]:
        assert not only(d.finish(context), Complete), "one batch on its way at a time"
    sent = d.core.refresh(first, d.now)
    assert [c for c, _ in sent.items] == contexts[:4], "the results finished meanwhile go too"
    d.core.completed(sent, ok(contexts[:4]), False, d.now)
    assert d.core.held == 4


def test_it_claims_again_once_a_quarter_of_the_room_is_free_or_a_runner_is_idle() -> None:
    d = Driver(concurrency=4, prefetch=4)  # room 8, refill at 2 free
    contexts, actions = d.running(8)
    assert not only(actions, Claim), "the room is full"
    first = d.finish(contexts[0])
    assert not only(first, Claim), "one free of 8: less than a quarter, and no runner idle"
    assert len(only(first, Run)) == 1, "the freed runner takes a prefetched job"
    second = d.finish(contexts[1])
    assert one(second, Claim).count == 2, "a lease's room is free once its handler returned"


def test_acknowledgements_that_lag_far_hold_claims_back() -> None:
    core = make_core(concurrency=1000, prefetch=0)
    todo: list[Action] = list(core.start(0.0))
    completes = []
    while todo:
        action = todo.pop()
        if isinstance(action, Claim):
            action = core.refresh(action, 0.0)
            todo += core.claimed(action, claimed([job() for _ in range(action.count)]), 0.0)
        elif isinstance(action, Run):
            todo += core.started(action.context, 0.0)
            todo += core.finished(action.context, Succeeded(encode(1)), 0.0)  # type: ignore[arg-type]
        elif isinstance(action, Complete):
            completes.append(action)  # never answered: Redis is slow
    assert core.running == 0 and core.held == 2000, "the room again, waiting to be acknowledged"
    answered = core.completed(completes[0], ok([c for c, _ in completes[0].items]), False, 0.0)
    assert only(answered, Claim), "an acknowledgement lets claims go on"


def test_an_idle_runner_makes_it_claim_even_for_one_free_slot() -> None:
    d = Driver(concurrency=2, prefetch=0)  # room 2, refill 1 anyway
    contexts, _ = d.running(2)
    assert one(d.finish(contexts[0]), Claim).count == 1


def test_an_empty_claim_waits_for_work_until_the_next_due_time_then_claims_again() -> None:
    d = Driver(max_idle_s=5.0)
    actions = d.claim(one(d.first, Claim), [], next_ms=NOW_MS + 1500)
    assert one(actions, WaitForWork).timeout_s == pytest.approx(1.5)
    assert not only(actions, Claim)
    assert not only(d.core.tick(d.now + 1), Claim), "no claim while it waits"
    assert one(d.core.waited(d.now + 2), Claim).count == 4


def test_idle_wait_is_bounded_by_max_idle_and_never_negative() -> None:
    assert idle_wait_s(claimed([], None), 5.0) == 5.0
    assert idle_wait_s(claimed([], NOW_MS + 60_000), 5.0) == 5.0
    assert idle_wait_s(claimed([], NOW_MS - 10), 5.0) == 0.0


def test_only_one_claim_is_on_its_way_at_a_time() -> None:
    d = Driver()
    assert not only(d.core.tick(d.now), Claim)
    assert not only(d.core.tick(d.now + 10), Claim)


# -- runs and acknowledgements ------------------------------------------------------------------


def test_prefetched_jobs_run_in_claim_order_as_runners_free_up() -> None:
    d = Driver(concurrency=1, prefetch=2)
    jobs = [job() for _ in range(3)]
    actions = d.claim(one(d.first, Claim), jobs)
    assert [r.context.job.id for r in only(actions, Run)] == [jobs[0].id]
    d.start(one(actions, Run))
    after = d.finish(one(actions, Run).context)
    assert [r.context.job.id for r in only(after, Run)] == [jobs[1].id]


def test_results_go_in_batches_one_batch_on_its_way_at_a_time() -> None:
    d = Driver(concurrency=3, prefetch=0)
    contexts, _ = d.running(3)
    first = one(d.finish(contexts[0], 1), Complete)
    assert [c for c, _ in first.items] == contexts[:1]
    assert not only(d.finish(contexts[1], 2), Complete), "waits for the batch on its way"
    assert not only(d.finish(contexts[2], 3), Complete)
    second = one(d.core.completed(first, ok(contexts[:1]), False, d.now), Complete)
    assert [c for c, _ in second.items] == contexts[1:]
    assert [bytes(r) for _, r in second.items] == [encode(2), encode(3)]


def test_each_failure_is_one_fail_with_the_retry_policy_of_its_error() -> None:
    d = Driver(concurrency=2, prefetch=0)
    contexts, _ = d.running(2)
    retry = one(d.core.finished(contexts[0], error_outcome(RuntimeError("flaky")), d.now), Fail)
    dead = one(d.core.finished(contexts[1], error_outcome(NonRetryable("never")), d.now), Fail)
    assert (retry.error, retry.retryable) == ("RuntimeError: flaky", True)
    assert (dead.error, dead.retryable) == ("NonRetryable: never", False)


def test_a_bad_payload_is_failed_at_once_and_its_neighbours_run() -> None:
    d = Driver(concurrency=3, prefetch=0)
    jobs = [job(), job(None, payload_error="payload is not valid msgpack: ExtraData"), job()]
    actions = d.claim(one(d.first, Claim), jobs)
    assert [r.context.job.id for r in only(actions, Run)] == [jobs[0].id, jobs[2].id]
    fail = one(actions, Fail)
    assert fail.context.job.id == jobs[1].id and not fail.retryable
    assert fail.error == "payload could not be decoded: payload is not valid msgpack: ExtraData"


class Unprintable(ValueError):
    def __str__(self) -> str:
        raise TypeError("no text for you")


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ({1, 2}, "a set"),
        (datetime.datetime(2024, 1, 1), "a datetime"),
        (Decimal("1.5"), "a Decimal"),
        (object(), "an object"),
    ],
)
def test_a_result_msgpack_cannot_encode_fails_its_job_non_retryable(value: Any, kind: str) -> None:
    outcome = result_outcome(value, encode)
    assert isinstance(outcome, Errored) and not outcome.retryable
    assert outcome.error.startswith("result could not be encoded: ")
    assert outcome.error.endswith(f"({kind})")
    assert "TypeError" in outcome.error


def test_a_result_over_the_size_limit_fails_its_job_with_the_reason() -> None:
    outcome = result_outcome("x" * 100, lambda value: encode(value, max_bytes=10, what="result"))
    assert isinstance(outcome, Errored)
    assert "over the limit of 10" in outcome.error and "(a str)" in outcome.error


def test_an_error_whose_str_raises_is_described_anyway() -> None:
    assert describe_error(Unprintable()) == "<Unprintable, str() raised TypeError>"
    assert error_outcome(Unprintable()).error == "<Unprintable, str() raised TypeError>"
    assert describe_error(KeyError()) == "KeyError"


def test_an_encoded_result_is_sent_as_it_is() -> None:
    outcome = result_outcome({"a": 1}, encode)
    assert isinstance(outcome, Succeeded) and bytes(outcome.result) == encode({"a": 1})


def test_a_completion_refused_is_logged_per_job_and_a_retried_one_as_unknown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    d = Driver(concurrency=3, prefetch=0)
    contexts, _ = d.running(3)
    complete = one(d.finish(contexts[0]), Complete)
    for context in contexts[1:]:
        d.finish(context)
    statuses = [
        ItemStatus(contexts[0].job.id, Status.LEASE_LOST),
    ]
    with caplog.at_level(logging.INFO, logger="scheduler.worker"):
        batch = one(d.core.completed(complete, statuses, False, d.now), Complete)
        d.core.completed(
            batch, [ItemStatus(contexts[1].job.id, Status.NOT_FOUND),
                    ItemStatus(contexts[2].job.id, Status.DUPLICATE)], True, d.now
        )  # fmt: skip
    text = caplog.text
    assert f"job {contexts[0].job.id}" in text and "completion refused (lease_lost)" in text
    assert "completion outcome unknown after a retry (not_found)" in text
    assert "refused (duplicate)" not in text, "a repeat whose first try was applied is fine"
    assert d.core.held == 0


@pytest.mark.parametrize("retried", [False, True])
def test_a_fail_the_lease_no_longer_allows_is_logged_not_raised(
    retried: bool, caplog: pytest.LogCaptureFixture
) -> None:
    d = Driver(concurrency=1, prefetch=0)
    contexts, _ = d.running(1)
    fail = one(d.core.finished(contexts[0], error_outcome(RuntimeError("x")), d.now), Fail)
    lost = LeaseLost("lease lost", queue="q", job_id=contexts[0].job.id)
    with caplog.at_level(logging.INFO, logger="scheduler.worker"):
        actions = d.core.failed(fail, lost, retried, d.now)
    expected = "failure outcome unknown after a retry" if retried else "the lease is no longer ours"
    assert expected in caplog.text
    assert not only(actions, Fail) and d.core.held == 0, "logged, and the lease is let go"


def test_a_recorded_failure_is_logged_with_its_outcome(caplog: pytest.LogCaptureFixture) -> None:
    d = Driver(concurrency=1, prefetch=0)
    contexts, _ = d.running(1)
    fail = one(d.core.finished(contexts[0], error_outcome(RuntimeError("x")), d.now), Fail)
    with caplog.at_level(logging.INFO, logger="scheduler.worker"):
        d.core.failed(fail, Failed(Outcome.RETRY, NOW_MS), False, d.now)
    assert "failed (retry): RuntimeError: x" in caplog.text


# -- heartbeats, time limits, lost leases ------------------------------------------------------


def test_heartbeats_come_every_third_of_the_shortest_lease_with_the_started_report() -> None:
    d = Driver(concurrency=2, prefetch=1)
    claim = one(d.first, Claim)
    jobs = [job(lease_ms=9000), job(lease_ms=3000), job(lease_ms=9000)]
    for run in only(d.claim(claim, jobs), Run):
        d.start(run)
    assert not only(d.core.tick(d.now + 0.9), Beat)
    beat = one(d.core.tick(d.now + 1.0), Beat)
    assert [c.job.id for c in beat.contexts] == [j.id for j in jobs]
    assert beat.started == {jobs[0].token: 1000, jobs[1].token: 1000}, "the prefetched one: not"
    assert not only(d.core.tick(d.now + 5.0), Beat), "none while one is on its way"
    d.core.beaten(beat, Heartbeat([], [1, 1, 1], NOW_MS), d.now + 5.0)
    assert one(d.core.tick(d.now + 5.0), Beat)
    assert heartbeat_interval_s(90_000) == 10.0 and heartbeat_interval_s(3) == 0.02


def test_heartbeats_go_in_chunks_of_1000() -> None:
    d = Driver(concurrency=2500, prefetch=0)
    claim = one(d.first, Claim)
    while claim is not None:
        actions = d.claim(claim, [job() for _ in range(claim.count)])
        claim = next(iter(only(actions, Claim)), None)
    beats = only(d.core.tick(d.now + 10.0), Beat)
    assert [len(b.contexts) for b in beats] == [1000, 1000, 500]


def test_a_lease_the_heartbeat_names_lost_is_cancelled_and_its_result_discarded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    d = Driver(concurrency=2, prefetch=0)
    contexts, _ = d.running(2)
    beat = one(d.core.tick(d.now + 10.0), Beat)
    with caplog.at_level(logging.INFO, logger="scheduler.worker"):
        actions = d.core.beaten(beat, Heartbeat([contexts[0].job.id], [0, 1], NOW_MS), d.now)
        assert one(actions, Cancel).contexts == (contexts[0],)
        assert contexts[0].cancelled.is_set() and not contexts[1].cancelled.is_set()
        late = d.finish(contexts[0])
        assert not only(late, Complete) and not only(late, Fail), "nothing sent for a lost lease"
    assert "lease lost; job cancelled" in caplog.text and "result discarded" in caplog.text


def test_a_lost_report_about_a_lease_being_completed_is_left_to_the_completion() -> None:
    d = Driver(concurrency=1, prefetch=0)
    contexts, _ = d.running(1)
    beat = one(d.core.tick(d.now + 10.0), Beat)
    complete = one(d.finish(contexts[0]), Complete)  # sent, and it lands before the heartbeat
    lost = d.core.beaten(beat, Heartbeat([contexts[0].job.id], [0], NOW_MS), d.now)
    assert not only(lost, Cancel) and not contexts[0].cancelled.is_set()
    d.core.completed(complete, ok(contexts), False, d.now)
    assert d.core.held == 0


def test_a_job_claimed_again_cancels_its_older_run_here() -> None:
    d = Driver(concurrency=2, prefetch=0)
    contexts, actions = d.running(1)
    old = contexts[0].job
    again = Job(old.queue, old.id, old.payload, 2, "2-newer", NOW_MS + LEASE_MS)
    actions = d.claim(one(actions, Claim), [again])
    assert one(actions, Cancel).contexts == (contexts[0],)
    assert contexts[0].cancelled.is_set()


def test_a_run_past_its_time_limit_is_cancelled_and_failed_with_a_timeout() -> None:
    d = Driver(concurrency=2, prefetch=0, time_limit_ms=500)
    contexts, _ = d.running(2)
    assert not only(d.core.tick(d.now + 0.4), Fail)
    actions = d.core.tick(d.now + 0.5)
    fails = only(actions, Fail)
    assert [f.error for f in fails] == ["TimeoutError: time limit of 500 ms passed"] * 2
    assert all(f.retryable for f in fails)
    assert [c for a in only(actions, Cancel) for c in a.contexts] == contexts
    assert not only(d.core.tick(d.now + 1.0), Fail), "failed once"
    late = d.finish(contexts[0])
    assert not only(late, Complete) and not only(late, Fail), "its late result is discarded"


# -- reaping -----------------------------------------------------------------------------------


def test_it_reaps_about_every_second_with_a_small_limit_one_at_a_time() -> None:
    d = Driver()
    times = []
    now, pending = d.now, None
    while now < d.now + 30:
        now += 0.02
        for action in d.core.tick(now):
            if isinstance(action, Reap):
                assert pending is None and action.limit == REAP_LIMIT
                pending = action
                times.append(now)
        if pending is not None:
            d.core.reaped(pending, None, now)
            pending = None
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert times[0] - d.now <= REAP_INTERVAL_S + 0.02
    assert all(0.8 - 0.03 <= g <= 1.2 + 0.03 for g in gaps), gaps
    assert len(set(round(g, 2) for g in gaps)) > 3, "jittered"


def test_no_reap_once_stopping() -> None:
    d = Driver()
    d.core.stop_requested(d.now)
    assert not only(d.core.tick(d.now + 5), Reap)


# -- stopping ----------------------------------------------------------------------------------


def test_stop_hands_back_prefetched_jobs_at_once_and_running_ones_after_the_grace() -> None:
    d = Driver(concurrency=2, prefetch=2, grace_s=5.0)
    contexts, actions = d.running(4)
    assert len(contexts) == 2
    actions = d.core.stop_requested(d.now)
    assert d.core.phase is Phase.STOPPING
    early = one(actions, Release)
    assert len(early.contexts) == 2 and early.started == {}, "never started: attempts given back"
    assert not only(d.core.tick(d.now + 4.9), Release)
    d.at(5.0)
    late = only(d.core.tick(d.now), Release)
    assert d.core.phase is Phase.DRAINING
    assert [c for c in late[0].contexts] == contexts
    assert set(late[0].started) == {c.job.token for c in contexts}, "began: attempts counted"
    assert all(c.cancelled.is_set() for c in contexts)
    d.core.released(early, ok(early.contexts), False, d.now)
    final = d.core.released(late[0], ok(late[0].contexts), False, d.now)
    assert d.core.phase is Phase.STOPPED
    assert {e.lane for e in only(final, Exit)} == {Lane.CLAIM, Lane.ACK, Lane.BEAT, Lane.RUN}


def test_running_jobs_that_finish_within_the_grace_are_acknowledged_then_it_stops() -> None:
    d = Driver(concurrency=1, prefetch=0)
    contexts, _ = d.running(1)
    d.core.stop_requested(d.now)
    complete = one(d.finish(contexts[0]), Complete)
    assert d.core.phase is Phase.DRAINING
    final = d.core.completed(complete, ok(contexts), False, d.now)
    assert d.core.phase is Phase.STOPPED and only(final, Exit)


def test_stopping_an_idle_worker_ends_its_wait_and_a_second_stop_changes_nothing() -> None:
    d = Driver()
    d.claim(one(d.first, Claim), [])
    actions = d.core.stop_requested(d.now)
    assert one(actions, EndWait)
    assert d.core.stop_requested(d.now) == []
    final = d.core.waited(d.now)
    assert d.core.phase is Phase.STOPPED and len(only(final, Exit)) == 4


def test_a_claim_answered_after_the_stop_is_handed_back_without_running() -> None:
    d = Driver()
    claim = one(d.first, Claim)
    d.core.stop_requested(d.now)
    jobs = [job(), job()]
    actions = d.claim(claim, jobs)
    assert not only(actions, Run)
    release = one(actions, Release)
    assert [c.job.id for c in release.contexts] == [j.id for j in jobs] and release.started == {}


def test_calls_are_given_up_at_the_stop_deadline_and_it_stops_anyway() -> None:
    d = Driver(concurrency=1, prefetch=0, grace_s=1.0)
    contexts, _ = d.running(1)
    claim = Claim(1, "claim-x", None)
    complete = one(d.finish(contexts[0]), Complete)
    assert not d.core.give_up(complete, d.now) and not d.core.give_up(claim, d.now)
    d.core.stop_requested(d.now)
    assert d.core.give_up(claim, d.now), "no claim once stopping"
    assert not d.core.give_up(complete, d.now + 1.0 + HAND_BACK_S - 0.01)
    assert d.core.pause_s(2.0, d.now + 1.0 + HAND_BACK_S - 0.5) == pytest.approx(0.5)
    assert d.core.give_up(complete, d.now + 1.0 + HAND_BACK_S)
    d.core.tick(d.now + 1.0 + HAND_BACK_S)
    assert d.core.phase is Phase.STOPPED


# -- a helper that fails -------------------------------------------------------------------------


def test_a_failed_acknowledgement_stops_claims_and_heartbeats_and_hands_leases_back() -> None:
    d = Driver(concurrency=2, prefetch=2)
    contexts, actions = d.running(4)
    complete = one(d.finish(contexts[0]), Complete)
    actions = d.core.helper_failed(Lane.ACK, complete, RuntimeError("bug"), d.now)
    assert isinstance(d.core.crashed, RuntimeError)
    released = [c for r in only(actions, Release) for c in r.contexts]
    assert len(released) == 4, "the unanswered completion, the running job and the prefetched two"
    assert d.core.give_up(Beat((contexts[1],), {}, None), d.now), "no heartbeat after the failure"
    for later in (d.now + 10, d.now + 20):
        assert not any(isinstance(a, Beat | Claim | Reap) for a in d.core.tick(later))
    assert d.core.phase is Phase.STOPPED, "stops at the (short) deadline even unanswered"


def test_a_failed_claim_stops_the_worker_and_its_running_jobs_are_handed_back() -> None:
    d = Driver(concurrency=2, prefetch=0)
    contexts, actions = d.running(2)
    claim = one(actions, Claim) if only(actions, Claim) else None
    actions = d.core.helper_failed(Lane.CLAIM, claim, RuntimeError("bug"), d.now)
    release = one(actions, Release)
    assert set(release.started) == {c.job.token for c in contexts}
    final = d.core.released(release, ok(release.contexts), False, d.now)
    assert d.core.phase is Phase.STOPPED and only(final, Exit)


def test_a_second_failure_while_stopping_is_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    d = Driver()
    first = RuntimeError("first")
    d.core.helper_failed(Lane.BEAT, None, first, d.now)
    with caplog.at_level(logging.ERROR, logger="scheduler.worker"):
        d.core.helper_failed(Lane.ACK, None, RuntimeError("second"), d.now)
    assert d.core.crashed is first and "failed again" in caplog.text


def test_an_interrupted_run_that_still_holds_its_lease_fails_for_a_retry() -> None:
    d = Driver(concurrency=1, prefetch=0)
    contexts, _ = d.running(1)
    fail = one(d.core.finished(contexts[0], Interrupted(), d.now), Fail)
    assert fail.retryable


# -- settings ----------------------------------------------------------------------------------


BAD_SETTINGS = [
    ("concurrency", 0), ("concurrency", 10_001), ("concurrency", True), ("concurrency", 2.0),
    ("concurrency", "4"), ("prefetch", -1), ("prefetch", 10_001), ("prefetch", False),
    ("grace_s", -1.0), ("grace_s", math.nan), ("grace_s", math.inf), ("grace_s", True),
    ("grace_s", "5"), ("max_idle_s", 0), ("max_idle_s", -1), ("max_idle_s", math.nan),
    ("max_idle_s", math.inf), ("max_idle_s", None), ("lease_ms", 0), ("lease_ms", -5),
    ("lease_ms", 10**15), ("lease_ms", 1.5), ("lease_ms", True), ("time_limit_ms", 0),
    ("time_limit_ms", math.inf), ("time_limit_ms", "100"), ("worker_id", ""),
    ("worker_id", "a b"), ("worker_id", "{x}"), ("worker_id", "x" * 129), ("worker_id", 7),
]  # fmt: skip


@pytest.mark.parametrize(("name", "value"), BAD_SETTINGS, ids=lambda v: repr(v)[:20])
def test_a_bad_setting_is_refused_at_construction_by_both_workers(name: str, value: Any) -> None:
    client = redis.Redis(port=1)  # never connected: construction sends nothing
    aclient = redis.asyncio.Redis(port=1)
    with pytest.raises(ConfigError, match=name):
        Worker(Queue(client, "q"), lambda job, context: None, **{name: value})
    with pytest.raises(ConfigError, match=name):
        AsyncWorker(AsyncQueue(aclient, "q"), _async_noop, **{name: value})


async def _async_noop(job: Job, context: JobContext) -> None:
    return None


def test_good_settings_at_their_bounds_are_accepted() -> None:
    settings(concurrency=10_000, prefetch=10_000, grace_s=0, max_idle_s=0.001)
    settings(lease_ms=1, time_limit_ms=100 * 365 * 24 * 3600 * 1000, worker_id="a" * 128)


def test_the_default_worker_id_is_a_valid_id() -> None:
    settings(worker_id=default_worker_id())
