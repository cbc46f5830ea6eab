"""Records the scripts cannot read, planted under load: each is set aside, no other job is
affected, and no job is ever left in no set.

A producer enqueues a steady stream faster than two thread workers (with a reaper beside them)
run it, so jobs wait. At even steps of the stream, the test plants records over the records of
jobs that are waiting, delayed (enqueued for it, due 1.5 s later) and active (leased by a worker,
its side effect under way): one corrupt (the record cut to half its length) and one of a newer
version (first byte 4) in each of the three sets. Each plant is one script that checks the job
is still in that set, so the history's ``corrupt`` / ``newer`` fault records (the set in
``status``, the bytes planted in ``detail``) say exactly what was planted where.

At the end every other job completed exactly once; each corrupt record is in the queue's
quarantine (met by a claim, the promotion of due jobs, or the expiry of its lease), as planted;
each newer one is still where it was planted, byte for byte; and every id of the queue's
``meta`` hash is in exactly one of the state sets, ``stubs`` or ``quarantine``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from scheduler import JobOptions, JobSpec
from scheduler._local_redis import LocalRedis
from tests.faults.harness import (
    SLOW,
    Outcome,
    Producer,
    Reaper,
    client_for,
    completed_count,
    finish,
    job_options,
    recording_queue,
    run_folder,
    thread_workers,
    wait_for,
)
from tests.faults.history import HistoryWriter, parse_lines
from tests.faults.recorder import RecordingQueue

LEASE_MS = 1000
DELAY_MS = 1500
"""How long after the plant a delayed job planted over is due."""
DEFAULT_SIZE = 150
"""Jobs the producer enqueues in the default run (one round of plants per 150)."""
SLOW_SIZE = 1500
COMMAND = (
    "SCHEDULER_SLOW=1 .venv/bin/python -m pytest -m slow tests/faults/test_unreadable_records.py"
)
PLANT_LUA = """
-- KEYS[1] meta (HASH), KEYS[2] a state set (ZSET)
-- ARGV[1] "corrupt" or "newer", ARGV[2] the bytes of a newer record, ARGV[3] n, ARGV[4..3+n]
-- ids to skip, ARGV[4+n..] the ids to choose from (none: the newest 50 of the set, newest first)
-- Plants over the record of the first of them that is in the set and not skipped: a corrupt
-- record (the record cut to half its length) or the newer one; returns {id, bytes planted}.
local n = tonumber(ARGV[3])
local skip, ids = {}, {}
for i = 4, 3 + n do skip[ARGV[i]] = true end
for i = 4 + n, #ARGV do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then
  local newest = redis.call("ZRANGE", KEYS[2], -50, -1)
  for i = #newest, 1, -1 do ids[#ids + 1] = newest[i] end
end
for _, id in ipairs(ids) do
  local raw = redis.call("HGET", KEYS[1], id)
  if raw and not skip[id] and redis.call("ZSCORE", KEYS[2], id) then
    local planted = ARGV[2]
    if ARGV[1] == "corrupt" then planted = string.sub(raw, 1, math.floor(#raw / 2)) end
    redis.call("HSET", KEYS[1], id, planted)
    return {id, planted}
  end
end
return nil
"""
"""The plant: one script, so the job is in the set named when its record is replaced."""
PLACES = ("ready", "delayed", "active")
KINDS = ("corrupt", "newer")


@dataclass
class Planter:
    """Plants unreadable records over jobs of the queue, and records each plant."""

    queue: RecordingQueue
    planted: dict[str, str] = field(default_factory=dict)
    """Job id -> the kind planted over it."""
    extra: int = 0
    """Jobs enqueued for the plants (the delayed ones, and waiting ones when none waited)."""

    def __post_init__(self) -> None:
        self._script = self.queue.client.register_script(PLANT_LUA)

    def running(self) -> list[str]:
        """The jobs whose side effect a thread worker has begun and not finished."""
        records = parse_lines(self.queue.history.path.read_text().splitlines())
        begun = {r.token: r.job_id for r in records if r.kind == "effect_start" and r.job_id}
        for r in records:
            if r.kind == "effect_end":
                begun.pop(r.token, None)
        return list(begun.values())

    def plant_once(self, kind: str, where: str) -> bool:
        """Plant ``kind`` over a job in set ``where`` (an active one with its side effect under
        way; else the newest); False if none was there."""
        keys = self.queue.ops.keys
        newer = b"\x04a record of a newer version " + str(len(self.planted)).encode()
        choose = self.running() if where == "active" else []
        args: list[Any] = [kind, newer, len(self.planted), *self.planted, *choose]
        if where == "active" and not choose:
            return False
        reply = self._script(keys=[keys.key("meta"), keys.key(where)], args=args)
        if reply is None:
            return False
        job_id, data = reply[0].decode(), reply[1]
        self.planted[job_id] = kind
        self.queue.history.write(
            "test", "fault", kind, job_id=job_id, status=where, detail=data.hex()
        )
        return True

    def enqueue_victims(self, n: int, options: JobOptions) -> None:
        """Enqueue ``n`` more jobs (recorded) to plant over."""
        base = f"victim-{self.extra}"
        specs = [JobSpec(k, id=f"{base}-{k}", options=options) for k in range(n)]
        self.queue.enqueue_many(specs)
        self.extra += n

    def plant(self, kind: str, where: str) -> None:
        """Plant ``kind`` in ``where``, retrying (with fresh waiting jobs when none waits)."""

        def attempt() -> bool:
            if self.plant_once(kind, where):
                return True
            if where == "ready":
                self.enqueue_victims(3, job_options(LEASE_MS))
            return False

        wait_for(attempt, 20, f"a job in {where} to plant a {kind} record over")

    def round(self) -> None:
        """One of each kind in each place; the delayed jobs are enqueued for it."""
        self.enqueue_victims(2, JobOptions(lease_ms=LEASE_MS, delay_ms=DELAY_MS, max_attempts=50))
        for where in PLACES:
            for kind in KINDS:
                self.plant(kind, where)

    def count(self, kind: str) -> int:
        """How many records of ``kind`` were planted."""
        return sum(1 for k in self.planted.values() if k == kind)


def settled(queue: RecordingQueue, good: int, corrupt: int) -> bool:
    """True once ``good`` jobs completed and ``corrupt`` records are in the quarantine."""
    try:
        return completed_count(queue) >= good and queue.stats().quarantined >= corrupt
    except redis.RedisError:
        return False


def scenario(size: int) -> Outcome:
    """``size`` jobs; one round of plants (six records) per 150 of them."""
    rounds = max(1, size // 150)
    with LocalRedis() as server, run_folder("unreadable") as folder:
        writer = HistoryWriter(folder, "test")
        client = client_for(server.url)
        planter = Planter(recording_queue(client, writer, "planter"))
        workers = [recording_queue(client, writer, f"worker-{n}") for n in (1, 2)]
        with (
            Reaper(recording_queue(client, writer, "reaper")),
            Producer(
                recording_queue(client, writer, "producer"),
                size,
                job_options(LEASE_MS),
                interval_s=0.01,
            ) as producer,
            thread_workers(workers, effect_s=0.1, concurrency=4, lease_ms=LEASE_MS),
        ):
            for n in range(rounds):
                step = (n + 1) * size // (rounds + 1)
                wait_for(lambda step=step: producer.enqueued >= step, 60, f"{step} enqueued")  # type: ignore[misc]
                planter.round()
            wait_for(producer.done, 60, "the producer")
            good = producer.enqueued + planter.extra - len(planter.planted)
            corrupt = planter.count("corrupt")
            wait_for(lambda: settled(workers[0], good, corrupt), 60, "every job settled")
        report = finish("unreadable records planted under load", folder, workers[0], None)
        stats = workers[0].stats()
        client.close()
    notes = (
        f"{corrupt} corrupt and {planter.count('newer')} newer records planted; "
        f"stats: {stats.quarantined} quarantined, {stats.unreadable} unreadable"
    )
    figures = {
        "corrupt": corrupt,
        "newer": planter.count("newer"),
        "quarantined": stats.quarantined,
        "unreadable": stats.unreadable,
    }
    return Outcome(report, COMMAND, notes=notes, figures=figures)


def check_outcome(outcome: Outcome, size: int) -> None:
    """Every plant set aside as its kind says, nothing else lost, every job in one set."""
    report = outcome.report
    figures = outcome.figures
    planted = max(1, size // 150) * len(PLACES)
    assert report.problems() == [], report.problems()
    assert report.marked == {"corrupt": planted, "newer": planted}
    assert figures["quarantined"] == figures["corrupt"] == planted
    assert figures["unreadable"] == figures["newer"], outcome.notes
    assert report.max_accepted == 1


def test_unreadable_records_are_set_aside_and_nothing_else_is_affected() -> None:
    check_outcome(scenario(DEFAULT_SIZE), DEFAULT_SIZE)


@pytest.mark.slow
@pytest.mark.skipif(not SLOW, reason="the larger run: SCHEDULER_SLOW=1 pytest -m slow")
def test_unreadable_records_are_set_aside_and_nothing_else_is_affected_at_scale() -> None:
    check_outcome(scenario(SLOW_SIZE), SLOW_SIZE)
