"""Lost replies and dropped connections, through a loopback TCP proxy (``proxy.py``) between
every client and Redis: added latency, connections cut after Redis ran the request (the reply
is lost), and a blackhole that swallows requests for longer than the client timeout.

redis-py repeats a call after a dropped connection or a timeout, and the workers and the
producer repeat it again after redis-py gives up: a repeat must never create a second job (the
enqueue carries the job id) nor a second lease (the claim carries its claim id). The checker
proves it from the history: no unexpected job, no lease that Redis counted but no client saw.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from scheduler import Queue, State
from scheduler._local_redis import LocalRedis
from scheduler._scripts import all_scripts
from tests.faults.harness import (
    QUEUE,
    REAP_INTERVAL_S,
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
from tests.faults.history import HistoryWriter
from tests.faults.proxy import Proxy

LEASE_MS = 4000
CLIENT_TIMEOUT_S = 0.5
DEFAULT_SIZE = 200
"""Jobs in the default run: one round of the fault phases per 200 jobs."""
SLOW_SIZE = 2000
COMMAND = "SCHEDULER_SLOW=1 .venv/bin/python -m pytest -m slow tests/faults/test_lost_replies.py"
PHASES: tuple[tuple[str, float, float, float], ...] = (
    # mode, seconds, latency (s), share of requests cut
    ("latency", 0.4, 0.02, 0.0),
    ("cut", 0.8, 0.0, 0.25),
    ("pass", 0.3, 0.0, 0.0),
    ("blackhole", 1.0, 0.0, 0.0),
    ("pass", 0.3, 0.0, 0.0),
)
"""One round of faults; the blackhole lasts twice the client timeout."""


class Nemesis:
    """A thread that runs :data:`PHASES` ``rounds`` times on the proxy, recording each switch."""

    def __init__(self, proxy: Proxy, writer: HistoryWriter, rounds: int) -> None:
        self.proxy, self.writer, self.rounds = proxy, writer, rounds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nemesis", daemon=True)

    def _run(self) -> None:
        for _ in range(self.rounds):
            for mode, seconds, latency_s, ratio in PHASES:
                self.writer.write("test", "fault", mode)
                self.proxy.set_mode(mode, latency_s=latency_s, ratio=ratio)
                if self._stop.wait(seconds):
                    break
        self.proxy.set_mode("pass")

    def busy(self) -> bool:
        """True while rounds remain."""
        return self._thread.is_alive()

    def __enter__(self) -> Nemesis:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self.proxy.set_mode("pass")


def scenario(size: int, seed: int = 3) -> Outcome:
    """``size`` jobs through the proxy under two thread workers and a reaper, while the
    phases run."""
    rounds = max(1, size // 200)
    with LocalRedis() as server, Proxy(server.port, seed) as proxy, run_folder("proxy") as folder:
        writer = HistoryWriter(folder, "test")
        client = client_for(proxy.url, socket_timeout=CLIENT_TIMEOUT_S)
        workers = [recording_queue(client, writer, f"worker-{n}") for n in (1, 2)]
        with (
            Nemesis(proxy, writer, rounds) as nemesis,
            Reaper(recording_queue(client, writer, "reaper")),
            Producer(
                recording_queue(client, writer, "producer"),
                size,
                job_options(LEASE_MS),
                interval_s=0.01,
                keep_going=nemesis.busy,
            ) as producer,
            thread_workers(workers, effect_s=0.005, concurrency=4, lease_ms=LEASE_MS),
        ):
            wait_for(lambda: not nemesis.busy(), 60 * rounds, "the fault phases")
            wait_for(producer.done, 60, "the producer")
            direct = Queue(client_for(server.url), QUEUE)
            wait_for(lambda: completed_count(direct) >= producer.enqueued, 60, "every job done")
            direct.client.close()
        bound_ms = LEASE_MS + REAP_INTERVAL_S * 1000
        report = finish("lost replies, cut connections (TCP proxy)", folder, workers[0], bound_ms)
        client.close()
        notes = f"{proxy.cuts} replies cut, {proxy.swallowed} requests swallowed"
    figures = {"cuts": proxy.cuts, "swallowed": proxy.swallowed}
    return Outcome(report, COMMAND, notes=notes, figures=figures)


def check_outcome(outcome: Outcome) -> None:
    """No second job, no second lease, at most one accepted completion; faults did happen."""
    report = outcome.report
    assert report.problems(no_hidden_leases=True) == [], report.problems(no_hidden_leases=True)
    assert report.max_accepted == 1
    assert report.unknown > 0, "some outcomes were unknown"
    assert outcome.figures["cuts"] > 0 and outcome.figures["swallowed"] > 0, outcome.notes


def test_repeated_calls_through_a_lossy_proxy_create_no_second_job_or_lease() -> None:
    check_outcome(scenario(DEFAULT_SIZE))


@pytest.mark.slow
@pytest.mark.skipif(not SLOW, reason="the larger run: SCHEDULER_SLOW=1 pytest -m slow")
def test_repeated_calls_through_a_lossy_proxy_at_scale() -> None:
    check_outcome(scenario(SLOW_SIZE))


@pytest.fixture
def cut_proxy() -> Iterator[tuple[Proxy, Queue]]:
    """A proxy and a queue through it whose client never repeats a call itself, connected and
    with every script loaded."""
    with LocalRedis() as server, Proxy(server.port) as proxy:
        client = redis.Redis.from_url(
            proxy.url, socket_timeout=2, retry=Retry(NoBackoff(), 0), retry_on_error=[]
        )
        for source in all_scripts().values():  # loaded, so the cut call is the script's own
            client.script_load(source.text)
        yield proxy, Queue(client, QUEUE)
        client.close()


def test_each_call_repeated_after_its_reply_was_lost_has_the_first_call_s_outcome(
    cut_proxy: tuple[Proxy, Queue],
) -> None:
    """One call at a time: the reply is lost (the call ran), the same call is repeated."""
    proxy, q = cut_proxy

    def lost_then_repeated(call: object) -> object:
        proxy.set_mode("cut")
        with pytest.raises(redis.ConnectionError):
            call()  # type: ignore[operator]
        proxy.set_mode("pass")
        return call()  # type: ignore[operator]

    enqueued = lost_then_repeated(lambda: q.enqueue("x", id="job-1"))
    assert enqueued.created is False  # type: ignore[attr-defined]
    claimed = lost_then_repeated(lambda: q.claim("w", claim_id="claim-1"))
    assert claimed.repeated and [j.id for j in claimed.jobs] == ["job-1"]  # type: ignore[attr-defined]
    assert q.claim("w").jobs == [], "no second lease"
    job = claimed.jobs[0]  # type: ignore[attr-defined]
    assert lost_then_repeated(lambda: q.complete(job, "done")) is False  # completed already
    info = q.inspect("job-1")
    assert (info.state, info.attempt, info.token, info.result) == (
        State.COMPLETED, 1, job.token, "done"
    )  # fmt: skip
    assert q.stats().counts[State.COMPLETED] == 1 and proxy.cuts == 3


def test_an_idle_worker_whose_wake_reply_was_lost_still_takes_new_work() -> None:
    """An idle worker's blocking pop times out on the server, and its reply is swallowed on a
    connection that then stays open (half-open, as after a NAT or firewall dropped its state).
    A job enqueued afterwards must still be taken within a few idle periods (``max_idle_s`` is
    1 s)."""
    with LocalRedis() as server, Proxy(server.port) as proxy, run_folder("halfopen") as folder:
        writer = HistoryWriter(folder, "test")
        client = client_for(proxy.url, socket_timeout=CLIENT_TIMEOUT_S)
        direct = Queue(client_for(server.url), QUEUE)
        worker = recording_queue(client, writer, "worker")
        try:
            with thread_workers([worker], effect_s=0.001, concurrency=1, lease_ms=LEASE_MS):
                wait_for(lambda: blocked_clients(direct) == 1, 10, "the worker waiting")
                proxy.set_mode("blackhole")
                wait_for(lambda: proxy.swallowed > 0, 10, "the wait's reply swallowed")
                proxy.set_mode("pass", reset=False)
                direct.enqueue("late", id="late")
                try:
                    wait_for(lambda: completed_count(direct) == 1, 10, "the late job done")
                finally:
                    proxy.set_mode("blackhole")  # close the half-open link, so the worker
                    proxy.set_mode("pass")  # sees an error and can stop
        finally:
            direct.client.close()
            client.close()


def blocked_clients(queue: Queue) -> int:
    """How many clients Redis has blocked in a BLPOP right now."""
    return int(queue.client.info("clients")["blocked_clients"])
