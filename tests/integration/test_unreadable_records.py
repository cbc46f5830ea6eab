"""Records the scripts cannot read, and records of earlier versions, on a real Redis.

Item 4 of the hardening issue: a truncated record, or one of another version, used to make
promote / reap / release / requeue raise after they wrote, leaving jobs in no set, and since
every claim promotes first, every later claim on the queue failed. Now every script reads and
decodes first (lib/records.lua), decides, then writes (lib/plan.lua), and:

* a **corrupt** record (no version can read it) met while walking a set is moved to the
  queue's quarantine, with its reason, and never blocks the queue again;
* a record of a **newer** version (a rolling upgrade, a rollback) is left exactly as it is,
  where it is, and counted by stats;
* a call about one job whose record it cannot read answers ``unreadable`` and changes nothing;
* records of **every earlier version** (v1 of commit 75370a3, v2 of da5a23d; fixtures in
  ``tests/fixtures/job_records.json``) are read as they are, and written back as version 3.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis

from scheduler import (
    JobOptions,
    Outcome,
    Queue,
    RecordUnreadable,
    State,
    Status,
    Unreadable,
    UnreadableRecord,
)
from tests.integration.helpers import (
    STATE_ZSETS,
    T0,
    Snapshot,
    locations,
    move_clock,
    seed_every_state,
)

pytestmark = pytest.mark.usefixtures("pinned_clock")

FIXTURES = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "job_records.json").read_text()
)
"""Records written by earlier versions of the scripts (one job in each state, made at commit
75370a3 for v1 and da5a23d for v2, by the same enqueue/claim/complete/fail/cancel calls), with
what ``inspect`` said of each then."""

TRUNCATED = b"\x03\x00\x01\x00"
"""Version 3, cut short: no version can read it."""

CORRUPT_RECORDS = {
    "truncated": TRUNCATED,
    "empty": b"",
    "version 0": b"\x00" + b"\x00" * 60,
    "bad state code": b"\x02\x09" + b"\x00" * 60,
}
NEWER_RECORDS = {
    "version 4": b"\x04\x00future",
    "version 255": b"\xff",
    "unknown flag": b"\x03\x80" + b"\x00" * 40,
}


def plant(r: redis.Redis, q: Queue, job_id: str, record: bytes) -> None:
    """Overwrite the record of ``job_id`` (which stays in its set)."""
    r.hset(q.ops.keys.key("meta"), job_id, record)


def raw(r: redis.Redis, q: Queue, job_id: str) -> bytes | None:
    """The stored record of ``job_id``."""
    value: bytes | None = r.hget(q.ops.keys.key("meta"), job_id)
    return value


def in_sets(r: redis.Redis, q: Queue, job_id: str) -> set[str]:
    """The ZSETs (state sets, quarantine, stubs) that hold ``job_id``."""
    parts = (*STATE_ZSETS, "quarantine", "stubs")
    return {part for part in parts if r.zscore(q.ops.keys.key(part), job_id) is not None}


def every_job_in_one_set(r: redis.Redis, q: Queue) -> None:
    """No job in no set: every record's id is in exactly one of the state sets, the stubs or
    the quarantine."""
    for field in r.hkeys(q.ops.keys.key("meta")):
        job_id = field.decode()
        assert len(in_sets(r, q, job_id)) == 1, (job_id, in_sets(r, q, job_id))


# -- corrupt records: quarantined wherever a script walks ---------------------------------------


@pytest.mark.parametrize("record", CORRUPT_RECORDS.values(), ids=CORRUPT_RECORDS)
def test_a_corrupt_delayed_record_among_due_jobs_is_quarantined_and_the_rest_promoted(
    r: redis.Redis, q: Queue, record: bytes
) -> None:
    """The review's reproduction: delayed a, b, c; b corrupt; the clock moves; reap."""
    for job_id in "abc":
        q.enqueue(job_id, id=job_id, options=JobOptions(delay_ms=1_000))
    plant(r, q, "b", record)
    move_clock(r, 1_000)

    reaped = q.reap()

    assert reaped.promoted == 2
    assert {job_id: in_sets(r, q, job_id) for job_id in "abc"} == {
        "a": {"ready"},
        "b": {"quarantine"},
        "c": {"ready"},
    }
    assert raw(r, q, "b") == record  # kept as it was, for whoever looks into it
    assert [job.id for job in q.claim("w", count=5).jobs] == ["a", "c"]
    every_job_in_one_set(r, q)


def test_a_corrupt_record_at_the_head_of_the_ready_set_never_blocks_a_claim(
    r: redis.Redis, q: Queue
) -> None:
    """The review's second reproduction: ready x, y with y corrupt; claim 2."""
    q.enqueue("x", id="x")
    q.enqueue("y", id="y")
    q.enqueue("z", id="z")
    plant(r, q, "y", TRUNCATED)

    assert [job.id for job in q.claim("w", count=2).jobs] == ["x"]
    assert [job.id for job in q.claim("w", count=2).jobs] == ["z"]
    assert in_sets(r, q, "y") == {"quarantine"}
    stats = q.stats()
    assert (stats.quarantined, stats.counts[State.ACTIVE]) == (1, 2)
    every_job_in_one_set(r, q)


def test_a_corrupt_active_record_is_quarantined_by_the_reaper(r: redis.Redis, q: Queue) -> None:
    for job_id in "ab":
        q.enqueue(job_id, id=job_id, options=JobOptions(lease_ms=1_000))
    q.claim("w", count=2)
    plant(r, q, "a", TRUNCATED)
    move_clock(r, 1_000)

    reaped = q.reap()

    assert (reaped.requeued, in_sets(r, q, "a"), in_sets(r, q, "b")) == (
        1,
        {"quarantine"},
        {"ready"},
    )
    every_job_in_one_set(r, q)


@pytest.mark.parametrize("state", [State.COMPLETED, State.DEAD, State.CANCELLED])
def test_a_corrupt_finished_record_is_quarantined_by_trimming(
    r: redis.Redis, make_queue: Any, state: State
) -> None:
    q = make_queue("test", defaults=JobOptions(keep_result_ms=1_000, keep_dead_ms=1_000))
    seed_every_state(q)
    victim = {State.COMPLETED: "completed-1", State.DEAD: "dead-1"}.get(state, "cancelled-1")
    plant(r, q, victim, TRUNCATED)
    move_clock(r, 1_000)

    q.reap()

    assert in_sets(r, q, victim) == {"quarantine"}
    every_job_in_one_set(r, q)


@pytest.mark.parametrize("script", ["requeue", "purge"])
def test_a_corrupt_record_met_by_a_requeue_or_purge_by_limit_is_quarantined(
    r: redis.Redis, q: Queue, script: str
) -> None:
    seed_every_state(q)
    plant(r, q, "dead-1", TRUNCATED)

    statuses = q.requeue(limit=5) if script == "requeue" else q.purge(State.DEAD, limit=5)

    assert [(s.id, s.status) for s in statuses] == [("dead-1", Status.UNREADABLE)]
    assert in_sets(r, q, "dead-1") == {"quarantine"}


def test_a_quarantined_record_is_shown_by_inspect_with_its_reason(
    r: redis.Redis, q: Queue
) -> None:
    q.enqueue({"keep": "me"}, id="x")
    plant(r, q, "x", TRUNCATED)
    move_clock(r, 7)
    q.claim("w")

    with pytest.raises(RecordUnreadable) as caught:
        q.inspect("x")

    record = caught.value.record
    assert isinstance(record, UnreadableRecord)
    assert (record.reason, record.record, record.quarantined_ms) == (
        Unreadable.CORRUPT,
        TRUNCATED,
        T0 + 7,
    )
    assert record.note == "quarantined: a corrupt record, found in the ready set"
    assert record.payload is not None  # the raw payload bytes are kept


# -- newer records: left untouched --------------------------------------------------------------


@pytest.mark.parametrize("record", NEWER_RECORDS.values(), ids=NEWER_RECORDS)
def test_a_newer_record_is_left_untouched_where_it_is_and_counted(
    r: redis.Redis, q: Queue, db_snapshot: Snapshot, record: bytes
) -> None:
    """An old worker during a rolling upgrade must never harm a newer job: not lease it, not
    move it, not trim it, not rewrite it. Its neighbours go on as usual."""
    q.enqueue("active", id="n-active", options=JobOptions(lease_ms=10))
    assert q.claim("w").jobs[0].id == "n-active"
    q.enqueue("completed", id="n-completed", options=JobOptions(keep_result_ms=1))
    assert q.complete(q.claim("w").jobs[0]) is True
    q.enqueue("delayed", id="n-delayed", options=JobOptions(delay_ms=5))
    q.enqueue("ready", id="n-ready")
    q.enqueue("neighbour", id="neighbour")
    newer = ["n-active", "n-completed", "n-delayed", "n-ready"]
    before_sets = {job_id: in_sets(r, q, job_id) for job_id in newer}
    for job_id in newer:
        plant(r, q, job_id, record)
    move_clock(r, 1_000)

    q.reap()
    claimed = q.claim("w", count=10).jobs

    assert [job.id for job in claimed] == ["neighbour"]
    for job_id in newer:
        assert raw(r, q, job_id) == record
        assert in_sets(r, q, job_id) == before_sets[job_id]
    assert before_sets == {
        "n-active": {"active"},
        "n-completed": {"completed"},
        "n-delayed": {"delayed"},
        "n-ready": {"ready"},
    }
    assert (q.stats().unreadable, q.stats().quarantined) == (4, 0)  # each met by a walk


def test_by_id_calls_on_an_unreadable_record_answer_unreadable_and_change_nothing(
    r: redis.Redis, q: Queue, db_snapshot: Snapshot
) -> None:
    q.enqueue("x", id="x")
    lease = q.claim("w").jobs[0]
    plant(r, q, "x", NEWER_RECORDS["version 4"])
    before = db_snapshot()

    assert q.complete_many([(lease, 1)])[0].status is Status.UNREADABLE
    assert q.release([lease])[0].status is Status.UNREADABLE
    assert q.heartbeat([lease]).lost == ["x"]
    for call in (lambda: q.complete(lease), lambda: q.fail(lease, "e"), lambda: q.cancel("x")):
        with pytest.raises(RecordUnreadable):
            call()
    with pytest.raises(RecordUnreadable) as caught:
        q.inspect("x")
    assert isinstance(caught.value.record, UnreadableRecord)
    assert caught.value.record.reason is Unreadable.NEWER
    assert q.enqueue("again", id="x").state is None  # the id is taken; its state unknown here
    assert [item.status for item in q.requeue(["x"])] == [Status.UNREADABLE]
    assert [item.status for item in q.purge(State.DEAD, ["x"])] == [Status.UNREADABLE]
    after = {k: v for k, v in db_snapshot().items() if b"request" not in k}
    assert after == {k: v for k, v in before.items() if b"request" not in k}


# -- earlier versions: read as they are --------------------------------------------------------

STATE_OF_FIXTURE = {
    "job-waiting": State.WAITING,
    "job-delayed": State.DELAYED,
    "job-active": State.ACTIVE,
    "job-completed": State.COMPLETED,
    "job-dead": State.DEAD,
    "job-cancelled": State.CANCELLED,
    "job-retry": State.DELAYED,
}
SET_OF_STATE = dict(zip(State, STATE_ZSETS, strict=True))


def load_fixture(r: redis.Redis, q: Queue, version: str) -> dict[str, dict[str, Any]]:
    """Every record of ``version`` stored in ``q`` with its set entry (scored as that version's
    scripts did), its payload, and the fields inspect gave for it then."""
    jobs: dict[str, dict[str, Any]] = FIXTURES[version]
    for job_id, job in jobs.items():
        fields = job["fields"]
        state = State(fields["state"])
        plant(r, q, job_id, bytes.fromhex(job["record"]))
        score = {
            State.WAITING: 0,
            State.DELAYED: fields["ready_ms"],
            State.ACTIVE: fields["deadline_ms"],
        }.get(state, fields["finished_ms"] + 86_400_000)
        r.zadd(q.ops.keys.key(SET_OF_STATE[state]), {job_id: score})
        r.hset(q.ops.keys.key("payload"), job_id, b"\x81\xa1n\xa3old")
    return jobs


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_records_of_an_earlier_version_read_as_they_were_written(
    r: redis.Redis, q: Queue, version: str
) -> None:
    jobs = load_fixture(r, q, version)
    for job_id, job in jobs.items():
        info = q.inspect(job_id)
        expected = job["fields"]
        assert info.state is STATE_OF_FIXTURE[job_id]
        assert (info.attempt, info.max_attempts, info.priority) == (
            expected["attempt"],
            expected["max_attempts"],
            expected["priority"],
        )
        assert (info.token, info.outcome, info.worker) == (
            expected["token"],
            Outcome(expected["outcome"]),
            expected["worker"],
        )
        assert (info.created_ms, info.ready_ms, info.leased_ms, info.finished_ms) == (
            expected["created_ms"],
            expected["ready_ms"],
            expected["started_ms"],  # what version 1 and 2 called the time of the lease
            expected["finished_ms"],
        )
        assert (info.started_ms, info.payload_bytes, info.payload) == (0, -1, {"n": "old"})


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_every_script_works_on_records_of_an_earlier_version(
    r: redis.Redis, q: Queue, version: str
) -> None:
    """A rolling upgrade: jobs written by the old scripts, handled by the new ones. Each record
    a script writes is version 3 from then on."""
    jobs = load_fixture(r, q, version)
    active_token = jobs["job-active"]["fields"]["token"]
    deadline = jobs["job-active"]["fields"]["deadline_ms"]
    r.zadd(q.ops.keys.key("active"), {"job-active": T0 + 60_000})  # its lease still runs
    record = bytearray(raw(r, q, "job-active") or b"")
    assert record
    q.heartbeat([("job-active", active_token)], started={active_token: 0})  # may be lost
    assert deadline  # (its old deadline is far behind the pinned clock)

    claimed = q.claim("w-new", count=5).jobs
    assert [job.id for job in claimed] == ["job-waiting"]
    assert claimed[0].payload == {"n": "old"}
    assert q.complete(claimed[0], "done") is True
    assert q.enqueue("again", id="job-completed").created is False
    assert q.cancel("job-delayed") is True
    assert q.requeue(["job-dead"])[0].status is Status.OK
    retry_token = jobs["job-retry"]["fields"]["token"]
    assert q.fail(("job-retry", retry_token), "again").repeated  # its first outcome stands
    for job_id in ("job-waiting", "job-delayed", "job-dead"):
        assert (raw(r, q, job_id) or b"")[0] == 3
    stats = q.stats()
    assert stats.counts[State.COMPLETED] == 2 and stats.quarantined == 0
    every_job_in_one_set(r, q)
    assert locations(r, q, "job-completed") >= {"meta", "completed"}


def test_a_running_entry_left_behind_by_an_older_version_is_dropped_by_the_reaper(
    r: redis.Redis, q: Queue
) -> None:
    """A rollback during a lease: this version marked the job running, then a worker of
    version 2 (which knows no running set) rewrote the record and ended the lease. The entry
    it left is dropped once its deadline has passed."""
    q.enqueue("x", id="x", options=JobOptions(lease_ms=1_000))
    lease = q.claim("w").jobs[0]
    q.heartbeat([lease], started={lease.token: 0})
    v2_record = bytes.fromhex(FIXTURES["v2"]["job-completed"]["record"])
    plant(r, q, "x", v2_record)
    r.zrem(q.ops.keys.key("active"), "x")
    r.zadd(q.ops.keys.key("completed"), {"x": T0 + 86_400_000})
    assert q.stats().running == 1  # the entry version 2 left

    move_clock(r, 999)
    q.reap()
    assert q.stats().running == 1  # its lease's deadline has not passed yet
    move_clock(r, 1)
    q.reap()
    assert q.stats().running == 0
    every_job_in_one_set(r, q)
