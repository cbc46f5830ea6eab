"""The asyncio worker end to end on a real Redis: concurrency, retries, lease loss cancelling
the job's task, time limits, graceful hand-back and waking on new work."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import redis
import redis.asyncio

from scheduler import Job, JobOptions, JobSpec, State
from scheduler.aio import AsyncQueue
from scheduler.aio_worker import AsyncWorker
from scheduler.testing import advance_clock
from scheduler.worker import JobContext, NonRetryable

DEADLINE_S = 10.0


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until it holds, failing after :data:`DEADLINE_S`."""
    deadline = time.monotonic() + DEADLINE_S
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.01)


@asynccontextmanager
async def running(worker: AsyncWorker) -> AsyncIterator[AsyncWorker]:
    """Run ``worker`` as a task for the block; stop it and await it (bounded) afterwards."""
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, DEADLINE_S + worker.grace_s)


def run(redis_url: str, scenario: Callable[[AsyncQueue], Awaitable[None]]) -> None:
    """Run ``scenario`` with an AsyncQueue named ``test`` on the test Redis."""

    async def main() -> None:
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            await scenario(AsyncQueue(client, "test"))
        finally:
            await client.aclose()

    asyncio.run(main())


async def count(q: AsyncQueue, state: State) -> int:
    return (await q.stats()).counts[state]


def test_every_job_runs_once_within_the_concurrency(redis_url: str, r: redis.Redis) -> None:
    async def scenario(q: AsyncQueue) -> None:
        await q.enqueue_many([JobSpec(n) for n in range(50)])
        now, peak = [0], [0]

        async def handler(job: Job, context: JobContext) -> int:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
            await asyncio.sleep(0.005)
            now[0] -= 1
            return int(job.payload) + 1

        async with running(AsyncWorker(q, handler, concurrency=4)):
            await eventually(lambda: _is(count(q, State.COMPLETED), 50), "50 completed")
        assert 1 < peak[0] <= 4

    run(redis_url, scenario)


def test_failures_retry_and_non_retryable_ones_die(redis_url: str, r: redis.Redis) -> None:
    async def scenario(q: AsyncQueue) -> None:
        flaky = (await q.enqueue("flaky", options=JobOptions(backoff_ms=0))).id
        poison = (await q.enqueue("poison")).id

        async def handler(job: Job, context: JobContext) -> str:
            if job.payload == "poison":
                raise NonRetryable("never")
            if job.attempt < 2:
                raise RuntimeError("not yet")
            return "ok"

        async with running(AsyncWorker(q, handler)):
            await eventually(
                lambda: _states(q, [flaky, poison], [State.COMPLETED, State.DEAD]), "settled"
            )
        assert (await q.inspect(flaky)).attempt == 2
        assert (await q.inspect(poison)).attempt == 1

    run(redis_url, scenario)


def test_a_lost_lease_cancels_the_task(redis_url: str, r: redis.Redis) -> None:
    async def scenario(q: AsyncQueue) -> None:
        job_id = (await q.enqueue("slow", options=JobOptions(lease_ms=1000))).id
        started, cancelled = asyncio.Event(), asyncio.Event()

        async def handler(job: Job, context: JobContext) -> str:
            started.set()
            try:
                await asyncio.sleep(DEADLINE_S)
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return "too late"

        async with running(AsyncWorker(q, handler, concurrency=1)):
            await asyncio.wait_for(started.wait(), DEADLINE_S)
            advance_clock(r, "test", 5000)
            stolen = (await q.claim("other-worker")).jobs
            assert [j.id for j in stolen] == [job_id]
            await asyncio.wait_for(cancelled.wait(), DEADLINE_S)
        assert await q.complete(stolen[0], "theirs") is True

    run(redis_url, scenario)


def test_a_time_limit_cancels_and_fails_the_job(redis_url: str, r: redis.Redis) -> None:
    async def scenario(q: AsyncQueue) -> None:
        job_id = (await q.enqueue("forever", options=JobOptions(max_attempts=1))).id

        async def handler(job: Job, context: JobContext) -> None:
            await asyncio.sleep(DEADLINE_S)

        async with running(AsyncWorker(q, handler, time_limit_ms=100)):
            await eventually(lambda: _states(q, [job_id], [State.DEAD]), "timed out")
        assert "time limit of 100 ms" in ((await q.inspect(job_id)).error or "")

    run(redis_url, scenario)


def test_stop_hands_back_and_an_idle_worker_wakes(redis_url: str, r: redis.Redis) -> None:
    async def scenario(q: AsyncQueue) -> None:
        job_id = (await q.enqueue("stuck")).id
        started = asyncio.Event()

        async def stuck(job: Job, context: JobContext) -> None:
            started.set()
            await asyncio.sleep(DEADLINE_S)

        async with running(AsyncWorker(q, stuck, grace_s=0.1)):
            await asyncio.wait_for(started.wait(), DEADLINE_S)
        info = await q.inspect(job_id)
        # Its handler had begun, and the hand-back said so: its attempt stays counted.
        assert (info.state, info.attempt) == (State.WAITING, 1)

        done = asyncio.Event()

        async def quick(job: Job, context: JobContext) -> None:
            done.set()

        async with running(AsyncWorker(q, quick, max_idle_s=30)):
            await asyncio.wait_for(done.wait(), DEADLINE_S)
            done.clear()
            await asyncio.sleep(0.1)  # idle now, blocked on the wake list
            began = time.monotonic()
            await q.enqueue("wake up")
            await asyncio.wait_for(done.wait(), DEADLINE_S)
            assert time.monotonic() - began < 1.0

    run(redis_url, scenario)


async def _is(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def _states(q: AsyncQueue, ids: list[str], expected: list[State]) -> bool:
    return [(await q.inspect(i)).state for i in ids] == expected
