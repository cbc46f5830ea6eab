"""The asyncio client against a real Redis: the same life cycle as the sync one."""

from __future__ import annotations

import asyncio

import redis.asyncio

from scheduler import JobSpec, LeaseLost, Outcome, State
from scheduler.aio import AsyncQueue


async def life_cycle(url: str) -> None:
    client = redis.asyncio.Redis.from_url(url)
    try:
        q = AsyncQueue(client, "aio")
        first = await q.enqueue({"n": 1}, id="one")
        again = await q.enqueue({"n": 1}, id="one")
        assert first.created and not again.created
        await q.enqueue_many([JobSpec({"n": 2}, id="two")])
        claimed = await q.claim("w1", count=2, claim_id="c1")
        repeated = await q.claim("w1", count=2, claim_id="c1")
        assert [j.id for j in repeated.jobs] == [j.id for j in claimed.jobs] == ["one", "two"]
        assert repeated.repeated
        one, two = claimed.jobs
        beat = await q.heartbeat([one, ("two", "1-0000000000000000")])
        assert beat.lost == ["two"]
        assert await q.complete(one, "ok") is True
        failed = await q.fail(two, "boom", retryable=False)
        assert failed.outcome is Outcome.DEAD
        try:
            await q.complete(two)
        except LeaseLost:
            pass
        else:
            raise AssertionError("a dead job's old lease must be refused")
        assert [s.id for s in await q.requeue(["two"])] == ["two"]
        assert await q.cancel("two") is True
        assert (await q.inspect("one")).result == "ok"
        stats = await q.stats()
        assert stats.counts[State.COMPLETED] == 1 and stats.counts[State.CANCELLED] == 1
        assert (await q.reap()).requeued == 0
        assert len(await q.purge(State.COMPLETED)) == 1
    finally:
        await client.aclose()


def test_async_life_cycle(redis_url: str, r: object) -> None:
    asyncio.run(life_cycle(redis_url))
