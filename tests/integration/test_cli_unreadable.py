"""The command line shows what cannot be decoded instead of failing on it (item 3 of the
hardening issue: one undecodable dead job made ``scheduler dead list`` and ``scheduler
inspect`` exit 1 with ``PayloadError``, hiding every dead letter), lists and purges the
quarantine, and tells running jobs from leased ones. Run in-process through
:func:`scheduler.__main__.main`."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from scheduler import JobOptions, Queue
from scheduler.__main__ import main
from tests.integration.helpers import run_script

QUEUE = "cli-unreadable"
EXT_TYPE_PAYLOAD = b"\xd4\x05\x00"
"""msgpack for ext type 5: a payload this client refuses to decode."""


@pytest.fixture
def queue(make_queue: Callable[..., Queue]) -> Queue:
    """The queue ``cli`` on a clean database."""
    return make_queue(QUEUE)


@pytest.fixture
def run(
    redis_url: str, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., tuple[int, bytes, str]]]:
    """``run(*argv)``: the exit code, stdout (bytes) and stderr of the command line."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def call(*argv: str) -> tuple[int, bytes, str]:
        code = main(list(argv))
        captured = capsysbinary.readouterr()
        return code, captured.out, captured.err.decode()

    yield call
    root.handlers[:] = handlers
    root.setLevel(level)


def poison(r: redis.Redis, queue: Queue, job_id: str, payload: bytes) -> None:
    """Enqueue ``job_id`` with ``payload`` bytes as they are (as a producer in another
    language, or with a larger size cap, would), past the client's own checks."""
    call = queue.ops.enqueue("placeholder", id=job_id)
    args = list(call.args)
    args[-2] = payload
    assert run_script(r, queue, "enqueue", args)[0] == b"ok"


def test_a_dead_job_whose_payload_cannot_be_decoded_is_listed_with_the_others(
    r: redis.Redis, queue: Queue, run: Callable[..., tuple[int, bytes, str]]
) -> None:
    for job_id in ("good-1", "bad", "good-2"):
        if job_id == "bad":
            poison(r, queue, job_id, EXT_TYPE_PAYLOAD)
        else:
            queue.enqueue("work", id=job_id)
    for job in queue.claim("w", count=3).jobs:
        queue.fail(job, f"boom {job.id}", retryable=False)

    code, out, err = run("dead", "list", "--queue", QUEUE)

    assert (code, err) == (0, "")
    text = out.decode()
    assert "3 dead job(s)" in text and "boom good-1" in text and "boom good-2" in text
    assert "bad  attempt 1/3" in text
    assert "[payload of 3 bytes: msgpack ext type 5 is not accepted]" in text
    code, out, _ = run("dead", "list", "--queue", QUEUE, "--json")
    listed = {job["id"]: job for job in json.loads(out)["dead"]}
    assert set(listed) == {"good-1", "bad", "good-2"}
    assert listed["bad"]["payload_error"] == "msgpack ext type 5 is not accepted"


def test_inspect_shows_an_undecodable_payload_by_size_and_raw_writes_its_bytes(
    r: redis.Redis, queue: Queue, run: Callable[..., tuple[int, bytes, str]]
) -> None:
    poison(r, queue, "bad", EXT_TYPE_PAYLOAD)

    code, out, err = run("inspect", "bad", "--queue", QUEUE)
    assert (code, err) == (0, "")
    assert b"payload_error: msgpack ext type 5 is not accepted" in out
    assert b"raw_payload: 3 bytes (inspect --raw payload writes them out)" in out

    code, out, _ = run("inspect", "bad", "--queue", QUEUE, "--raw", "payload")
    assert (code, out) == (0, EXT_TYPE_PAYLOAD)


def test_an_unreadable_record_is_shown_for_what_it_is(
    r: redis.Redis, queue: Queue, run: Callable[..., tuple[int, bytes, str]]
) -> None:
    queue.enqueue("x", id="newer")
    r.hset(queue.ops.keys.key("meta"), "newer", b"\x04future")

    code, out, err = run("inspect", "newer", "--queue", QUEUE)

    assert (code, err) == (0, "")
    assert b"unreadable by this version (written by a newer version" in out
    code, out, _ = run("inspect", "newer", "--queue", QUEUE, "--raw", "record")
    assert (code, out) == (0, b"\x04future")
    code, out, _ = run("inspect", "newer", "--queue", QUEUE, "--json")
    assert json.loads(out)["reason"] == "newer"


def test_the_quarantine_is_listed_and_purged(
    r: redis.Redis, queue: Queue, run: Callable[..., tuple[int, bytes, str]]
) -> None:
    for job_id in ("corrupt-1", "corrupt-2", "fine"):
        queue.enqueue(job_id, id=job_id)
    for job_id in ("corrupt-1", "corrupt-2"):
        r.hset(queue.ops.keys.key("meta"), job_id, b"\x03\x00\x01")
    assert [job.id for job in queue.claim("w", count=3).jobs] == ["fine"]

    code, out, _ = run("quarantine", "list", "--queue", QUEUE)
    text = out.decode()
    assert code == 0 and "2 quarantined record(s)" in text
    assert "corrupt-1  3 bytes" in text and "a corrupt record, found in the ready set" in text
    code, out, _ = run("stats", "--queue", QUEUE, "--json")
    assert json.loads(out)["queues"][QUEUE]["quarantined"] == 2

    code, out, _ = run("quarantine", "purge", "--queue", QUEUE, "corrupt-1")
    assert code == 0 and b"corrupt-1 purged" in out
    assert queue.stats().quarantined == 1
    code, out, _ = run("quarantine", "purge", "--queue", QUEUE, "fine")
    assert code == 1 and b"fine bad_state" in out  # not quarantined: left alone
    code, out, _ = run("quarantine", "purge", "--queue", QUEUE, "--limit", "5")
    assert code == 0 and b"corrupt-2 purged" in out
    assert r.hget(queue.ops.keys.key("meta"), "corrupt-2") is None


def test_stats_tells_running_jobs_from_leased_ones(
    queue: Queue, run: Callable[..., tuple[int, bytes, str]]
) -> None:
    for job_id in ("a", "b"):
        queue.enqueue(job_id, id=job_id, options=JobOptions(priority=ord(job_id)))
    running, leased = queue.claim("w", count=2).jobs
    queue.heartbeat([running, leased], started={running.token: 0})

    code, out, _ = run("stats", "--queue", QUEUE)
    text = out.decode()
    assert code == 0
    assert "of the active: running 1  leased, not started 1" in text
    assert f"running {running.id}" in text and f"leased {leased.id}" in text
    code, out, _ = run("stats", "--queue", QUEUE, "--json")
    report: dict[str, Any] = json.loads(out)["queues"][QUEUE]
    assert (report["running"], report["leased_not_started"]) == (1, 1)
