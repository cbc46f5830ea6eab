"""Directed runs of the state machine: each test drives :class:`QueueMachine` by hand through
one path of the scripts that random examples reach only now and then, with the invariants (and
Redis equal to the model) checked after every step, and then asserts that the path was taken.

The paths are those of the hardening work: payloads this client cannot decode, results it
cannot encode, the byte budget of a claim, release's refund, running entries left behind by a
record of an older version, newer records forgotten, stubs and what each call answers from
one, count trimming past the repeat window, request records repeated and forgotten, and a
corrupt record met by each walk that sets it aside. The random run covers their mixes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from scheduler import JobOptions, Outcome, Retention, State

from .model import UNREADABLE_MEMORY_MS
from .test_state_machine import POISON, UNENCODABLE, QueueMachine

PLAIN = JobOptions(lease_ms=1000, max_attempts=2, backoff_ms=0, jitter=0.0)
"""The options of most jobs below: nothing random, a lease of 1000 ms, two attempts."""

HELD = ("held", 0)
"""The newest lease a worker holds."""


class Driven:
    """A machine driven by hand: every rule called through it is followed by the invariants,
    and the paths the model took (its notes) are kept in ``paths``."""

    def __init__(self, machine: QueueMachine) -> None:
        self.machine = machine
        self.paths: list[str] = []

    def __getattr__(self, name: str) -> Callable[..., None]:
        rule = getattr(self.machine, name)

        def step(*args: Any, **kwargs: Any) -> None:
            rule(*args, **kwargs)
            self.paths += self.machine.model.notes
            self.machine.redis_keeps_the_invariants_and_agrees_with_model()

        return step

    def job(self, job_id: str) -> Any:
        """The model's job ``job_id`` (which the invariants have just found equal to Redis's)."""
        return self.machine.model.jobs[job_id]

    def pick(self, job_id: str) -> int:
        """The ``pick`` that names ``job_id`` in the machine's list of known ids."""
        return self.machine.known_ids.index(job_id)

    def plant_over(self, job_id: str, how: str) -> None:
        """Plant a record (``how``: see the machine's ``plant`` rule) over ``job_id``."""
        self.plant_record(job_id, how, 3)
        assert self.machine.model.jobs[job_id].stored is not None


@pytest.fixture
def drive(redis_url: str) -> Iterator[Callable[..., Driven]]:
    """``drive(retention=..., budget=...)``: a started machine (empty database, clock pinned)
    with that retention and small-client byte budget, driven by hand."""
    machines: list[QueueMachine] = []

    def build(retention: Retention | None = None, budget: int = 100) -> Driven:
        machine = QueueMachine(redis_url)
        machines.append(machine)
        machine.start(first_jobs=[], retention=retention or Retention(), budget=budget)
        return Driven(machine)

    yield build
    for machine in machines:
        machine.teardown()


def enqueue(m: Driven, options: JobOptions = PLAIN, pad: int = 0) -> str:
    """Enqueue one job under a fresh id; its id."""
    m.enqueue(options=options, reuse=None, pad=pad)
    return m.machine.known_ids[-1]


def claim(m: Driven, count: int = 1, via: str = "main") -> None:
    """Claim under a fresh claim id."""
    m.claim(worker="worker-a", count=count, maintenance=100, repeat=None, via=via)


@pytest.mark.parametrize("kind", sorted(POISON))
def test_a_payload_this_client_cannot_decode_is_claimed_with_its_reason(
    drive: Callable[..., Driven], kind: str
) -> None:
    m = drive()
    first = enqueue(m)
    m.enqueue_poison(kind=kind, options=PLAIN, reuse=None)
    poison = m.machine.known_ids[-1]
    last = enqueue(m)
    claim(m, count=3)
    assert [m.job(i).state for i in (first, poison, last)] == [State.ACTIVE] * 3
    info = m.machine.model.inspect(poison)
    assert info is not None and info.payload_error  # type: ignore[union-attr]
    m.fail(ref=("held", 1), retryable=False, delay_ms=None)  # the poison job, dead at once
    assert m.job(poison).state is State.DEAD


@pytest.mark.parametrize("kind", sorted(UNENCODABLE))
def test_a_result_msgpack_cannot_encode_is_refused_before_anything_is_sent(
    drive: Callable[..., Driven], kind: str
) -> None:
    m = drive()
    job_id = enqueue(m)
    claim(m)
    m.complete(refs=[HELD], unencodable=kind)
    m.complete(refs=[HELD, HELD], unencodable=kind)
    assert m.job(job_id).state is State.ACTIVE
    m.complete(refs=[HELD])
    assert m.job(job_id).state is State.COMPLETED


def test_a_claim_stops_at_its_byte_budget_but_always_leases_one(
    drive: Callable[..., Driven],
) -> None:
    m = drive(budget=100)
    ids = [enqueue(m, pad=60) for _ in range(3)]  # about 75 bytes each
    claim(m, count=3, via="small")
    claim(m, count=3, via="small")
    assert "claim stopped by its byte budget" in m.paths
    assert [m.job(i).state for i in ids] == [State.ACTIVE, State.ACTIVE, State.WAITING]
    m.enqueue_batch(options=[PLAIN, PLAIN], copy_of=0, insert_at=0, reuse=None, pad=60, via="small")
    claim(m, count=3)
    assert m.job(ids[2]).state is State.ACTIVE


def test_release_refunds_only_a_lease_whose_handler_never_began(
    drive: Callable[..., Driven],
) -> None:
    m = drive()
    job_id = enqueue(m, JobOptions(lease_ms=1000, max_attempts=1))
    claim(m)
    m.hand_back(refs=[HELD])  # never started: the attempt comes back
    assert (m.job(job_id).state, m.job(job_id).attempt) == (State.WAITING, 0)
    claim(m)
    m.heartbeat(refs=[HELD], ago=[250], lease_ms=None)  # the handler began 250 ms ago
    m.repeat_finish()
    m.hand_back(refs=[HELD])  # started, on its last attempt: dead, with the reason
    job = m.job(job_id)
    assert (job.state, job.outcome, job.attempt) == (State.DEAD, Outcome.RETURNED, 1)
    assert job.error == "handed back unfinished on attempt 1 of 1 (worker worker-a)"
    m.repeat_finish()  # the same hand-back again: duplicate


def test_a_started_report_in_the_release_itself_counts(drive: Callable[..., Driven]) -> None:
    m = drive()
    job_id = enqueue(m)
    claim(m)
    m.hand_back(refs=[HELD], ago=[0])
    assert (m.job(job_id).attempt, m.job(job_id).started_ms > 0) == (1, True)
    assert not m.machine.model.running


def test_a_running_entry_left_by_an_older_record_goes_at_its_deadline(
    drive: Callable[..., Driven],
) -> None:
    m = drive()
    job_id = enqueue(m)
    claim(m)
    m.heartbeat(refs=[HELD], ago=[0], lease_ms=None)
    assert job_id in m.machine.model.running
    m.plant_over(job_id, "version 2")  # started_ms is lost: the entry stands for nothing
    m.complete(refs=[HELD])
    assert job_id in m.machine.model.running
    m.move_clock(to=999)
    m.reap(limit=1000)
    assert job_id in m.machine.model.running
    m.move_clock(to=1)
    m.reap(limit=1000)
    assert "running entry dropped by tidy_running" in m.paths
    assert not m.machine.model.running


def test_tidy_running_drops_the_entry_of_a_lease_expiry_did_not_reach(
    drive: Callable[..., Driven],
) -> None:
    m = drive()
    enqueue(m)
    enqueue(m)
    claim(m, count=2)
    m.heartbeat(refs=[HELD, ("held", 1)], ago=[0, 5], lease_ms=None)
    m.move_clock(to=("deadline", 0))
    m.reap(limit=1)  # one lease ends; the other's running entry is past its deadline
    assert "running entry dropped by tidy_running" in m.paths
    m.reap(limit=1)


def test_a_newer_record_met_again_and_again_stays_counted(drive: Callable[..., Driven]) -> None:
    m = drive()
    job_id = enqueue(m, JobOptions(delay_ms=100))
    m.plant_over(job_id, "version 4")
    m.move_clock(to=("run_at", 0))
    m.reap(limit=1000)
    assert m.machine.model.stats().unreadable == 1
    m.move_clock(to=UNREADABLE_MEMORY_MS - 1)
    claim(m)  # met again by the claim's maintenance: counted from now
    m.move_clock(to=("memory", 0))
    assert m.machine.model.stats().unreadable == 1  # on the boundary: still counted
    m.reap(limit=1000)  # met again by the promotion before the reap forgets
    m.move_clock(to=("memory", 1))
    m.reap(limit=1)
    assert "a newer record forgotten" not in m.paths
    m.cancel(pick=m.pick(job_id))  # unreadable: nothing changes


def test_a_newer_record_not_met_for_ten_minutes_is_forgotten(
    drive: Callable[..., Driven],
) -> None:
    m = drive(Retention(max_cancelled=1, trim_batch=1))
    first = enqueue(m, JobOptions(delay_ms=60_000))
    second = enqueue(m, JobOptions(delay_ms=60_000))
    m.cancel(pick=m.pick(first))
    m.plant_over(first, "unknown flag")
    m.cancel(pick=m.pick(second))  # over max_cancelled: the trim meets the newer record
    assert m.machine.model.stats().unreadable == 1
    m.purge(state=State.CANCELLED, chosen=[m.pick(second)], limit=1)  # not over any more
    m.move_clock(to=("memory", -1))
    m.reap(limit=1000)
    m.move_clock(to=1)
    assert m.machine.model.stats().unreadable == 1  # ten minutes ago: still counted
    m.reap(limit=1000)
    assert "a newer record forgotten" in m.paths
    assert m.machine.model.stats().unreadable == 0


def test_count_trimming_keeps_stubs_for_the_window_and_each_call_answers_from_one(
    drive: Callable[..., Driven],
) -> None:
    m = drive(Retention(max_completed=0, max_dead=0, trim_batch=1, repeat_window_ms=5000))
    done = enqueue(m)
    claim(m)
    m.complete(refs=[HELD])  # over max_completed 0: made a stub at once
    assert "completed made a stub" in m.paths and m.job(done).stub
    m.repeat_finish()  # the stub answers duplicate
    m.enqueue(options=PLAIN, reuse=m.pick(done))  # duplicate, completed
    m.fail(ref=("issued", 0), retryable=True, delay_ms=None)  # lease_lost
    m.hand_back(refs=[("issued", 0)])  # lease_lost
    m.cancel(pick=m.pick(done))  # bad_state completed
    m.requeue(chosen=[m.pick(done)], limit=1)  # not_found: a stub is not requeued
    m.heartbeat(refs=[("issued", 0)], ago=[0], lease_ms=None)  # lost
    failed = enqueue(m, JobOptions(max_attempts=1, lease_ms=1000))
    claim(m)
    m.fail(ref=HELD, retryable=True, delay_ms=None)  # dead: made a stub
    m.repeat_finish()  # the stub answers duplicate, dead
    assert m.job(failed).stub and m.job(failed).outcome is Outcome.DEAD
    m.purge(state=State.COMPLETED, chosen=[m.pick(failed), m.pick(done)], limit=1)
    assert done not in m.machine.model.jobs and failed in m.machine.model.jobs
    m.move_clock(to=("expiry", 0))  # the dead stub's window ends
    m.reap(limit=1000)
    assert "stub deleted" in m.paths and failed not in m.machine.model.jobs
    assert m.machine.model.removed == {done: "purged", failed: "trimmed"}


def test_count_trimming_deletes_a_record_whose_window_has_passed(
    drive: Callable[..., Driven],
) -> None:
    m = drive(Retention(max_cancelled=1, trim_batch=0, repeat_window_ms=1000))
    first = enqueue(m, JobOptions(delay_ms=60_000))
    second = enqueue(m, JobOptions(delay_ms=60_000))
    m.cancel(pick=m.pick(first))
    m.move_clock(to=("window", 0))  # the first one's repeat window ends
    m.cancel(pick=m.pick(second))
    m.reap(limit=1000)  # one over max_cancelled: the first goes, no stub
    assert "cancelled trimmed, expired=False" in m.paths
    assert first not in m.machine.model.jobs and not m.job(second).stub


def test_a_repeated_requeue_or_purge_answers_as_the_first_until_forgotten(
    drive: Callable[..., Driven],
) -> None:
    m = drive(Retention(repeat_window_ms=2000))
    job_id = enqueue(m)
    claim(m)
    m.fail(ref=HELD, retryable=False, delay_ms=None)
    m.requeue(chosen=[], limit=5)  # by limit: the dead job waits again
    assert m.job(job_id).state is State.WAITING
    m.requeue(chosen=[], limit=5, repeat=0)  # duplicate: the same answer, nothing moves
    m.purge(state=State.DEAD, chosen=[m.pick(job_id), m.pick(job_id)], limit=1)
    m.requeue(chosen=[], limit=5, repeat=1)  # the purge again: duplicate
    m.move_clock(to=("forget", 0))
    m.reap(limit=1000)
    assert "a request record forgotten" in m.paths and not m.machine.model.requests
    m.requeue(chosen=[], limit=5, repeat=0)  # forgotten: runs again (nothing dead now)


def reap(m: Driven) -> None:
    """Run the periodic maintenance."""
    m.reap(limit=1000)


WALKS: dict[str, tuple[str | None, Callable[[Driven], None]]] = {
    "claim's ready head": (None, lambda m: claim(m, count=2)),
    "promotion": ("run_at", reap),
    "expiry by reap": ("deadline", reap),
    "expiry by a claim": ("deadline", claim),
    "age trimming": ("expiry", reap),
    "stub trimming": ("expiry", reap),
    "requeue by limit": (None, lambda m: m.requeue(chosen=[], limit=5)),
    "purge by limit": (None, lambda m: m.purge(state=State.DEAD, chosen=[], limit=5)),
}
"""Each walk that sets aside an unreadable record: the event the clock first moves to (if
any), then the call that walks."""


def put_in_place(m: Driven, walk: str) -> str:
    """A job where ``walk`` meets it; its id."""
    if walk == "promotion":
        return enqueue(m, JobOptions(delay_ms=100))
    job_id = enqueue(m, JobOptions(lease_ms=1000, max_attempts=1, keep_dead_ms=500))
    if walk == "claim's ready head":
        return job_id
    claim(m)
    if walk.startswith("expiry"):
        return job_id
    m.fail(ref=HELD, retryable=False, delay_ms=None)
    if walk == "stub trimming":
        m.enqueue(options=PLAIN, reuse=None)
        claim(m)
        m.fail(ref=HELD, retryable=False, delay_ms=None)  # over max_dead 1: a stub
        assert m.job(job_id).stub
    return job_id


@pytest.mark.parametrize("how", ["truncated", "version 255"])
@pytest.mark.parametrize("walk", sorted(WALKS))
def test_an_unreadable_record_is_set_aside_by_every_walk_that_meets_it(
    drive: Callable[..., Driven], walk: str, how: str
) -> None:
    m = drive(Retention(max_dead=1, trim_batch=1))
    job_id = put_in_place(m, walk)
    other = enqueue(m)
    m.plant_over(job_id, how)
    m.complete(refs=[HELD])  # by id: unreadable, nothing changes (or not found, lease lost)
    event, walk_over = WALKS[walk]
    if event is not None:
        m.move_clock(to=(event, 0))
    walk_over(m)
    assert any("record set aside" in path for path in m.paths), m.paths
    job = m.job(job_id)
    assert (job.quarantined_ms is not None) is (how == "truncated")
    m.enqueue(options=PLAIN, reuse=m.pick(job_id))  # its id is still taken
    claim(m, count=3)
    assert m.job(other).state is State.ACTIVE
