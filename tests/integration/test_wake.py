"""Idle workers wait on the queue's wake LIST instead of polling: every path that makes a job
claimable pushes a token, and an empty claim says when to look again."""

from __future__ import annotations

import pytest
import redis

from scheduler import JobOptions, JobSpec, Queue
from tests.integration.helpers import T0, move_clock


def wake_tokens(r: redis.Redis, q: Queue) -> int:
    """How many wake tokens wait in ``q``'s wake LIST."""
    return int(r.llen(q.ops.keys.key("wake")))


def test_enqueue_pushes_one_token_per_ready_job_up_to_the_cap(q: Queue, r: redis.Redis) -> None:
    q.enqueue("x")
    assert wake_tokens(r, q) == 1
    q.enqueue_many([JobSpec(i) for i in range(100)])
    assert wake_tokens(r, q) == 64
    r.delete(q.ops.keys.key("wake"))
    q.enqueue("later", options=JobOptions(delay_ms=1000))
    assert wake_tokens(r, q) == 0


@pytest.mark.usefixtures("pinned_clock")
def test_an_empty_claim_names_the_next_due_job_or_lease_deadline(q: Queue, r: redis.Redis) -> None:
    assert q.claim("w").next_ms is None
    q.enqueue("later", options=JobOptions(delay_ms=5000))
    assert q.claim("w").next_ms == T0 + 5000
    q.enqueue("now", options=JobOptions(lease_ms=2000))
    assert [j.payload for j in q.claim("w").jobs] == ["now"]
    assert q.claim("w").next_ms == T0 + 2000


@pytest.mark.usefixtures("pinned_clock")
def test_promotion_and_reaping_wake_workers(q: Queue, r: redis.Redis) -> None:
    q.enqueue("later", options=JobOptions(delay_ms=1000, lease_ms=1000, max_attempts=2))
    r.delete(q.ops.keys.key("wake"))
    move_clock(r, 1000)
    assert q.reap().promoted == 1
    assert wake_tokens(r, q) == 1
    q.claim("w")
    r.delete(q.ops.keys.key("wake"))
    move_clock(r, 1000)
    assert q.reap().requeued == 1
    assert wake_tokens(r, q) == 1
