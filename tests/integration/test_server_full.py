"""A Redis at maxmemory (noeviction) refuses enqueue with our ServerFull, on both clients, and
stores nothing; ServerFull is also redis-py's OutOfMemoryError."""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio
from redis.exceptions import OutOfMemoryError

from scheduler import JobNotFound, Queue, ServerFull
from scheduler._local_redis import LocalRedis
from scheduler.aio import AsyncQueue

BIG = b"x" * 100_000


def fill_up(queue: Queue) -> int:
    """Enqueue big jobs until Redis refuses one; how many fit."""
    for count in range(1000):
        try:
            queue.enqueue(BIG)
        except ServerFull:
            return count
    raise AssertionError("maxmemory was never reached")


def test_both_clients_raise_server_full_and_store_nothing() -> None:
    with LocalRedis(extra_args=["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"]) as srv:
        client = redis.Redis.from_url(srv.url)
        queue = Queue(client, "full")
        assert fill_up(queue) > 0
        with pytest.raises(ServerFull) as caught:
            queue.enqueue(BIG, id="refused-sync")
        assert isinstance(caught.value, OutOfMemoryError)
        assert caught.value.queue == "full" and "out of memory" in str(caught.value)
        with pytest.raises(JobNotFound):
            queue.inspect("refused-sync")

        async def refused_async() -> None:
            aclient = redis.asyncio.Redis.from_url(srv.url)
            try:
                with pytest.raises(ServerFull):
                    await AsyncQueue(aclient, "full").enqueue(BIG, id="refused-async")
            finally:
                await aclient.aclose()

        asyncio.run(refused_async())
        with pytest.raises(JobNotFound):
            queue.inspect("refused-async")
        claimed = queue.claim("w", count=5)  # claims still run (allow-oom)
        assert len(claimed.jobs) == 5
        client.close()
