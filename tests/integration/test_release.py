"""release.lua: a worker hands back leases it will not finish, fenced by the token."""

from __future__ import annotations

from scheduler import JobOptions, Outcome, Queue, State, Status


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


# -- a job whose handler began keeps its attempt counted ------------------------------------------


def test_a_job_whose_handler_began_keeps_its_attempt_counted(q: Queue) -> None:
    """The hand-back of a job that ran (reported on the release itself) is not a refund: a job
    that outlives every worker's grace period must still reach max_attempts."""
    q.enqueue("x", id="a", options=JobOptions(max_attempts=3))
    held = q.claim("w1").jobs[0]
    assert [s.status for s in q.release([held], started={held.token: 5})] == [Status.OK]
    info = q.inspect("a")
    assert (info.state, info.attempt, info.outcome) == (State.WAITING, 1, Outcome.RETURNED)
    assert q.claim("w2").jobs[0].attempt == 2


def test_a_start_reported_by_heartbeat_also_keeps_the_attempt(q: Queue) -> None:
    q.enqueue("x", id="a")
    held = q.claim("w1").jobs[0]
    q.heartbeat([held], started={held.token: 0})
    assert q.stats().running == 1
    q.release([held])  # this call says nothing of the start: Redis remembers it
    assert (q.inspect("a").attempt, q.stats().running) == (1, 0)


def test_a_hang_and_restart_loop_ends_in_the_dead_letters_at_max_attempts(q: Queue) -> None:
    """Item 9 of the hardening issue: claim, start, hand back (a SIGTERM past the grace
    period), over and over. On its last attempt the hand-back sends the job to the dead
    letters with the reason, instead of waiting again for ever."""
    q.enqueue("stuck", id="a", options=JobOptions(max_attempts=3))
    for attempt in (1, 2, 3):
        held = q.claim(f"w{attempt}").jobs[0]
        assert held.attempt == attempt
        assert q.release([held], started={held.token: 100})[0].status is Status.OK
    info = q.inspect("a")
    assert (info.state, info.attempt, info.outcome) == (State.DEAD, 3, Outcome.RETURNED)
    assert info.error == "handed back unfinished on attempt 3 of 3 (worker w3)"
    assert q.claim("w4").jobs == []
    assert q.release([held])[0].status is Status.DUPLICATE


def test_a_prefetched_job_handed_back_on_its_last_attempt_waits_again(q: Queue) -> None:
    q.enqueue("x", id="a", options=JobOptions(max_attempts=1))
    held = q.claim("w1").jobs[0]
    assert q.release([held])[0].status is Status.OK
    info = q.inspect("a")
    assert (info.state, info.attempt) == (State.WAITING, 0)
