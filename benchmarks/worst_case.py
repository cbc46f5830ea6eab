"""The worst call of each script: Redis's own time for one call on the state that makes it do
the most work, at the library's default sizes and at the largest sizes a call accepts.

    .venv/bin/python -m benchmarks.worst_case [--runs 5] [--sizes default,max] [--json PATH]
        [--redis-url URL]

Redis runs one script at a time, so a script's worst call is how long every other client of that
Redis waits. Each case builds its state (untimed) on a flushed database, then makes the one call
and reads its duration from ``SLOWLOG`` (threshold 0): the server's time for that EVALSHA, no
round trip. Times, delays and retentions are made to run out by real waiting (a few ms), so the
production scripts are measured, not the test build.

Two sizes (:data:`SIZES`):

* **default**: what the library sizes itself: a thread worker's claim (``concurrency +
  prefetch`` = 8) with the default maintenance (100), its heartbeats and hand-backs (8), the
  default ``trim_batch`` (100), ``reap`` limit (50), ``stats`` active list (100), requeue and
  purge limits (100); batches the caller sizes (``enqueue_many``, ``complete_many``) at 100;
* **max**: 1000 items, every limit 1000, the default byte budget of a call (4 MiB): payloads and
  results of 4 KiB, so that 1000 of them just fit.

The states are the worst each script can meet: every due delayed job and every expired lease at
once (on its last attempt, so it dies with an error text), the finished sets over their count
limits within the repeat window (so every trimmed record becomes a stub), as many stubs and
request records ready to go, 1000 option sets in one enqueue, every heartbeat reporting a start.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from scheduler import Job, JobOptions, JobSpec, Queue, Retention, State

from . import _common

QUEUE = "worst"
SETTLE_S = 0.005
"""How long to wait for a 1 ms delay, lease or retention to run out."""


@dataclass(frozen=True)
class Sizes:
    """The sizes of one column."""

    name: str
    batch: int
    claim: int
    maintenance: int
    trim: int
    reap: int
    active_limit: int
    admin_limit: int
    beats: int
    item_bytes: int


SIZES = (
    Sizes("default", batch=100, claim=8, maintenance=100, trim=100, reap=50, active_limit=100,
          admin_limit=100, beats=8, item_bytes=4096),
    Sizes("max", batch=1000, claim=1000, maintenance=1000, trim=1000, reap=1000,
          active_limit=1000, admin_limit=1000, beats=1000, item_bytes=4096),
)  # fmt: skip

BUDGET = 4 * 1024 * 1024
SHORT = JobOptions(lease_ms=1, max_attempts=1)
"""Options whose lease runs out at once, on the job's only attempt."""
EXPIRING = JobOptions(keep_result_ms=1, keep_dead_ms=1)
"""Options whose record's retention runs out at once."""

Case = Callable[[Queue, Sizes], Callable[[], Any]]


def queue_for(client: redis.Redis, sizes: Sizes, max_count: int = 0) -> Queue:
    """The queue of a case: count limits of ``max_count`` (0: every finished record is over
    them), the size's trim batch, a long repeat window (trimmed records become stubs)."""
    retention = Retention(
        max_completed=max_count,
        max_dead=max_count,
        max_cancelled=max_count,
        trim_batch=sizes.trim,
        repeat_window_ms=3_600_000,
    )
    return Queue(client, QUEUE, retention=retention, max_call_bytes=BUDGET)


def payload(sizes: Sizes) -> bytes:
    """A payload (or result) of the size's item size."""
    return b"x" * sizes.item_bytes


def setup(q: Queue) -> Queue:
    """The queue of ``q``'s name with generous retention, to build a state with: the measured
    queue's own count limits would trim while the state is made."""
    return Queue(q.client, QUEUE, retention=Retention(repeat_window_ms=3_600_000))


def enqueue_jobs(q: Queue, n: int, data: bytes, options: JobOptions | None = None) -> list[str]:
    """Enqueue ``n`` jobs (untimed); their ids."""
    q = setup(q)
    ids: list[str] = []
    for start in range(0, n, 1000):
        specs = [JobSpec(data, options=options) for _ in range(min(1000, n - start))]
        ids.extend(item.id for item in q.enqueue_many(specs))
    return ids


def lease_all(q: Queue, n: int) -> list[Job]:
    """Claim ``n`` waiting jobs (untimed)."""
    q = setup(q)
    jobs: list[Job] = []
    while len(jobs) < n:
        jobs.extend(q.claim("setup", count=min(1000, n - len(jobs)), maintenance=0).jobs)
    return jobs


def lease_all_new(q: Queue, n: int, data: bytes, options: JobOptions | None = None) -> list[Job]:
    """Enqueue and claim ``n`` jobs (untimed)."""
    enqueue_jobs(q, n, data, options)
    return lease_all(q, n)


def finished_sets(q: Queue, states: Sequence[State], expired: int, fresh: int) -> None:
    """In each of ``states``: ``expired`` records whose retention runs out at once and
    ``fresh`` ones kept for a day (untimed)."""
    q = setup(q)
    for options, n in ((EXPIRING, expired), (None, fresh)):
        if n == 0:
            continue
        for state in states:
            if state is State.CANCELLED:
                for job_id in enqueue_jobs(q, n, b"x", options):
                    q.cancel(job_id)
                continue
            jobs = lease_all_new(q, n, b"x", options)
            if state is State.COMPLETED:
                for start in range(0, n, 1000):
                    q.complete_many([(job, b"r") for job in jobs[start : start + 1000]])
            else:
                for job in jobs:
                    q.fail(job, "fatal", retryable=False)


def stubs_due(q: Queue, n: int) -> None:
    """``n`` stubs whose window ends at once (untimed)."""
    short_window = Queue(
        q.client, QUEUE, retention=Retention(max_completed=0, trim_batch=1000, repeat_window_ms=1)
    )
    for start in range(0, n, 1000):
        jobs = lease_all_new(short_window, min(1000, n - start), b"s")
        short_window.complete_many([(job, None) for job in jobs])


def requests_due(q: Queue, n: int) -> None:
    """``n`` request records whose window ends at once (untimed)."""
    short_window = Queue(q.client, QUEUE, retention=Retention(repeat_window_ms=1))
    for _ in range(n):
        short_window.requeue(["no-such-job"])


def expired_last_attempts(q: Queue, n: int, started: bool) -> None:
    """``n`` leases that run out at once, on their job's last attempt (so each dies with an
    error text), reported started if ``started`` (untimed)."""
    q = setup(q)
    jobs = lease_all_new(q, n, b"e", SHORT)
    if started:
        for start in range(0, n, 1000):
            part = jobs[start : start + 1000]
            q.heartbeat(part, lease_ms=1, started={job.token: 0 for job in part})


# -- the cases ---------------------------------------------------------------------------------


def case_enqueue(q: Queue, s: Sizes) -> Callable[[], Any]:
    """A batch of new jobs, each with options of its own, half delayed."""
    specs = [
        JobSpec(payload(s), options=JobOptions(priority=i % 2001 - 1000, delay_ms=i % 2))
        for i in range(s.batch)
    ]
    return lambda: q.enqueue_many(specs)


def case_claim(q: Queue, s: Sizes) -> Callable[[], Any]:
    """Maintenance at its limit (due delayed jobs, expired leases on their last attempt, old
    request records), then a full claim of payloads up to the byte budget."""
    expired_last_attempts(q, s.maintenance, started=False)
    enqueue_jobs(q, s.maintenance, b"d", JobOptions(delay_ms=1))
    enqueue_jobs(q, s.claim, payload(s))
    requests_due(q, s.maintenance)
    time.sleep(SETTLE_S)
    return lambda: q.claim("bench", count=s.claim, maintenance=s.maintenance)


def case_complete(q: Queue, s: Sizes) -> Callable[[], Any]:
    """A batch of results up to the budget; the completed set with as many expired records as
    one call trims, and as many over its count within the window (each becomes a stub); as
    many stubs whose window has ended."""
    stubs_due(q, s.trim)
    finished_sets(q, [State.COMPLETED], expired=s.trim, fresh=s.trim)
    jobs = lease_all_new(q, s.batch, b"p")
    time.sleep(SETTLE_S)
    results = [(job, payload(s)) for job in jobs]
    return lambda: q.complete_many(results)


def case_fail(q: Queue, s: Sizes) -> Callable[[], Any]:
    """A failure to the dead letters; the dead set and the stubs as for complete."""
    stubs_due(q, s.trim)
    finished_sets(q, [State.DEAD], expired=s.trim, fresh=s.trim)
    job = lease_all_new(q, 1, b"p")[0]
    time.sleep(SETTLE_S)
    return lambda: q.fail(job, "e" * 1000, retryable=False)


def case_heartbeat(q: Queue, s: Sizes) -> Callable[[], Any]:
    """Every lease extended, every one reporting that its handler began."""
    jobs = lease_all_new(q, s.beats, b"h")
    started = {job.token: 1 for job in jobs}
    return lambda: q.heartbeat(jobs, started=started)


def case_release(q: Queue, s: Sizes) -> Callable[[], Any]:
    """Every lease handed back."""
    jobs = lease_all_new(q, s.beats, b"r")
    started = {job.token: 1 for job in jobs[::2]}
    return lambda: q.release(jobs, started=started)


def case_reap(q: Queue, s: Sizes) -> Callable[[], Any]:
    """Everything reap does, each at its limit, at once: due delayed jobs, expired leases on
    their last attempt (reported started, so each also leaves the running set), three finished
    sets each with expired records and records over their count, stubs and request records
    whose window has ended."""
    expired_last_attempts(q, s.reap, started=True)
    enqueue_jobs(q, s.reap, b"d", JobOptions(delay_ms=1))
    finished_sets(q, [State.COMPLETED, State.DEAD, State.CANCELLED], s.reap, s.reap)
    stubs_due(q, s.reap)
    requests_due(q, s.reap)
    time.sleep(SETTLE_S)
    return lambda: q.reap(limit=s.reap)


def case_cancel(q: Queue, s: Sizes) -> Callable[[], Any]:
    """A cancel; the cancelled set and the stubs as for complete."""
    stubs_due(q, s.trim)
    finished_sets(q, [State.CANCELLED], expired=s.trim, fresh=s.trim)
    job_id = enqueue_jobs(q, 1, b"p")[0]
    time.sleep(SETTLE_S)
    return lambda: q.cancel(job_id)


def case_requeue(q: Queue, s: Sizes) -> Callable[[], Any]:
    """The dead letters, the most a call takes at once."""
    jobs = lease_all_new(q, s.admin_limit, payload(s))
    for job in jobs:
        setup(q).fail(job, "fatal", retryable=False)
    return lambda: q.requeue(limit=s.admin_limit)


def case_purge(q: Queue, s: Sizes) -> Callable[[], Any]:
    """Completed records with results, the most a call takes at once."""
    jobs = lease_all_new(q, s.admin_limit, payload(s))
    setup(q).complete_many([(job, payload(s)) for job in jobs])
    return lambda: q.purge(State.COMPLETED, limit=s.admin_limit)


def case_inspect(q: Queue, s: Sizes) -> Callable[[], Any]:
    """A job with the largest payload and result (1 MiB each)."""
    big = b"x" * (1024 * 1024 - 16)
    job = lease_all_new(q, 1, big)[0]
    setup(q).complete(job, big)
    return lambda: q.inspect(job.id)


def case_stats(q: Queue, s: Sizes) -> Callable[[], Any]:
    """64 priority bands, each with hand-backs in front, and a full active list."""
    specs = [JobSpec(b"s", options=JobOptions(priority=p)) for p in range(64) for _ in range(2)]
    setup(q).enqueue_many(specs)
    setup(q).release(setup(q).claim("w", count=64, maintenance=0).jobs)
    lease_all_new(q, s.active_limit, b"a")
    return lambda: q.stats(active_limit=s.active_limit)


CASES: dict[str, Case] = {
    "enqueue": case_enqueue,
    "claim": case_claim,
    "complete": case_complete,
    "fail": case_fail,
    "heartbeat": case_heartbeat,
    "release": case_release,
    "reap": case_reap,
    "cancel": case_cancel,
    "requeue": case_requeue,
    "purge": case_purge,
    "inspect": case_inspect,
    "stats": case_stats,
}


def script_ms(client: redis.Redis, call: Callable[[], Any]) -> float:
    """The server's time for the scripts ``call`` sends (ms): the sum of its EVALSHA entries in
    SLOWLOG (a batch over the byte budget is several calls; their longest is what others wait
    for, so that is returned)."""
    client.slowlog_reset()
    call()
    entries = client.slowlog_get(128)
    durations = [e["duration"] for e in entries if e["command"].upper().startswith(b"EVALSHA")]
    if not durations:
        raise RuntimeError("no EVALSHA in SLOWLOG: is slowlog-log-slower-than 0?")
    return max(durations) / 1000


def run(url: str, given_url: bool, args: Any) -> dict[str, Any]:
    """Every case at every size, ``runs`` times; the report."""
    report = _common.new_report("worst_case", "worst call per script", url, given_url,
                                {"runs": args.runs, "budget_bytes": BUDGET})  # fmt: skip
    client = _common.connect(url)
    client.config_set("slowlog-log-slower-than", 0)
    client.config_set("slowlog-max-len", 1024)
    times: dict[tuple[str, str], list[float]] = {}
    chosen = [sizes for sizes in SIZES if sizes.name in args.sizes.split(",")]
    try:
        for _ in range(args.runs):
            for name, case in CASES.items():
                for sizes in chosen:
                    client.flushdb()
                    call = case(queue_for(client, sizes), sizes)
                    times.setdefault((name, sizes.name), []).append(script_ms(client, call))
        client.flushdb()
    finally:
        client.close()
    for (name, size), runs in times.items():
        report["figures"][f"{name}_{size}_ms"] = _common.figure(
            f"{name}, worst call at the {size} sizes", "ms", runs
        )
    for sizes in chosen:
        worst = max(report["figures"][f"{n}_{sizes.name}_ms"]["median"] for n in CASES)
        report["notes"].append(f"worst call at the {sizes.name} sizes: {worst:.2f} ms (median)")
    return report


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse the arguments, run, print the table, write JSON/chart if asked; the report."""
    parser = _common.parser("benchmarks.worst_case", __doc__, runs=5)
    parser.add_argument("--sizes", default="default,max", help="default, max, or both")
    args = parser.parse_args(argv)
    if args.runs < 1 or not set(args.sizes.split(",")) <= {s.name for s in SIZES}:
        parser.error("need runs >= 1 and --sizes from default,max")
    with _common.redis_server(args.redis_url) as url:
        report = run(url, bool(args.redis_url), args)
    return _common.finish(report, args, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
