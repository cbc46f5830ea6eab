"""release.lua: a worker hands back leases it will not finish, fenced by the token."""

from __future__ import annotations

from scheduler import Outcome, Queue, State, Status


def test_a_released_job_waits_again_first_in_line_with_its_attempt_given_back(q: Queue) -> None:
    q.enqueue("first", id="a")
    q.enqueue("second", id="b")
    held = q.claim("w1").jobs[0]
    assert held.id == "a"
    assert [s.status for s in q.release([held])] == [Status.OK]
    info = q.inspect("a")
    assert (info.state, info.attempt, info.outcome) == (State.WAITING, 0, Outcome.RETURNED)
    again = q.claim("w2", count=2).jobs
    assert [j.id for j in again] == ["a", "b"]
    assert again[0].attempt == 1 and again[0].token != held.token


def test_a_repeated_release_is_a_duplicate_and_a_stale_token_is_refused(q: Queue) -> None:
    q.enqueue("x", id="a")
    held = q.claim("w1").jobs[0]
    q.release([held])
    assert q.release([held])[0].status is Status.DUPLICATE
    q.claim("w2")
    assert q.release([held])[0].status is Status.LEASE_LOST
    assert q.release([("missing", "1-0000000000000000")])[0].status is Status.NOT_FOUND
    assert q.inspect("a").state is State.ACTIVE


def test_release_wakes_an_idle_worker(q: Queue, r: object) -> None:
    import redis
    import redis.cluster

    assert isinstance(r, redis.Redis | redis.cluster.RedisCluster)
    q.enqueue("x", id="a")
    held = q.claim("w1").jobs[0]
    r.delete(q.ops.keys.key("wake"))
    q.release([held])
    assert r.blpop([q.ops.keys.key("wake")], timeout=1) is not None
