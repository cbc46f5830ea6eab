"""The peer comparison's adapters: this project and each peer queue, run the same way.

Each adapter knows how to enqueue one no-op job at a time, how to run one worker process in the
peer's fastest documented non-forking mode, and (where the peer has one) how to read its own
count of completed jobs. Every no-op task does one thing: ``INCR`` of :data:`COUNTER` on the
same Redis, so completions are counted the same way for everyone.

Run as a child process by :mod:`benchmarks.peers` (a fresh interpreter per role, so no peer's
global set-up touches another's)::

    python -m benchmarks._peers enqueue PEER URL N   # prints {"seconds": ...}
    python -m benchmarks._peers work PEER URL        # runs a worker until SIGTERM (or empty)
    python -m benchmarks._peers count PEER URL N     # prints {"completed": N or null}
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio

COUNTER = "peerbench:done"
QUEUE = "peerbench"
THREADS = 8
"""Worker threads of every thread-based worker."""
TASKS = 64
"""Concurrent jobs of every asyncio worker."""
PREFETCH = 100
"""Jobs this project's thread Worker leases ahead of a free thread (its knob for short jobs)."""

_sync_client: redis.Redis | None = None
_async_client: redis.asyncio.Redis | None = None
_url = ""


def count_sync() -> None:
    """The no-op task's one action, from a thread-based worker."""
    global _sync_client
    if _sync_client is None:
        _sync_client = redis.Redis.from_url(_url)
    _sync_client.incr(COUNTER)


async def count_async() -> None:
    """The no-op task's one action, from an asyncio worker."""
    global _async_client
    if _async_client is None:
        _async_client = redis.asyncio.Redis.from_url(_url)
    await _async_client.incr(COUNTER)


def block_until_signal() -> None:
    """Sleep until SIGTERM or SIGINT (then exit 0)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass


def timed(calls: int, call: Callable[[], Any]) -> float:
    """Seconds for ``calls`` sequential calls."""
    began = time.perf_counter()
    for _ in range(calls):
        call()
    return time.perf_counter() - began


async def timed_async(calls: int, call: Callable[[], Any]) -> float:
    """Seconds for ``calls`` sequential awaited calls."""
    began = time.perf_counter()
    for _ in range(calls):
        await call()
    return time.perf_counter() - began


# -- this project -------------------------------------------------------------------------------


def _scheduler_tasks(asynchronous: bool) -> Any:
    from scheduler.tasks import TaskRegistry

    tasks = TaskRegistry()
    if asynchronous:

        @tasks.task(name="noop")
        async def noop_async() -> None:
            await count_async()

    else:

        @tasks.task(name="noop")
        def noop() -> None:
            count_sync()

    return tasks


def scheduler_enqueue(url: str, n: int) -> float:
    """This project: ``Task.enqueue`` one job at a time (a task message, as the peers send)."""
    from scheduler import Queue

    queue = Queue(redis.Redis.from_url(url), QUEUE)
    task = _scheduler_tasks(False).tasks["noop"]
    return timed(n, lambda: task.enqueue(queue))


def scheduler_work_threads(url: str) -> None:
    """This project's thread ``Worker`` (8 threads), dispatching by task name."""
    from scheduler import Queue
    from scheduler.worker import Worker

    worker = Worker(
        Queue(redis.Redis.from_url(url), QUEUE), _scheduler_tasks(False).handler,
        concurrency=THREADS, prefetch=PREFETCH,
    )  # fmt: skip
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    worker.run()


def scheduler_work_asyncio(url: str) -> None:
    """This project's ``AsyncWorker`` (64 tasks), dispatching by task name."""
    from scheduler.aio import AsyncQueue
    from scheduler.aio_worker import AsyncWorker

    async def main() -> None:
        queue = AsyncQueue(redis.asyncio.Redis.from_url(url), QUEUE)
        worker = AsyncWorker(queue, _scheduler_tasks(True).handler, concurrency=TASKS)
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, worker.stop)
        await worker.run()

    asyncio.run(main())


def scheduler_count(url: str) -> int | None:
    """This project's own count: completed jobs in the queue's stats."""
    from scheduler import Queue, State

    return Queue(redis.Redis.from_url(url), QUEUE).stats(active_limit=0).counts[State.COMPLETED]


# -- RQ -----------------------------------------------------------------------------------------


def rq_noop() -> None:
    """RQ's no-op task (imported by the worker by its dotted name)."""
    count_sync()


def rq_enqueue(url: str, n: int) -> float:
    """RQ: ``Queue.enqueue`` one job at a time."""
    from rq import Queue

    queue = Queue(QUEUE, connection=redis.Redis.from_url(url))
    return timed(n, lambda: queue.enqueue(rq_noop))


def rq_work(url: str) -> None:
    """RQ: ``SimpleWorker`` (no fork per job) in burst mode: it exits once the queue is empty."""
    from rq import Queue, SimpleWorker

    connection = redis.Redis.from_url(url)
    worker = SimpleWorker([Queue(QUEUE, connection=connection)], connection=connection)
    worker.work(burst=True, logging_level="WARNING")
    block_until_signal()


def rq_count(url: str) -> int | None:
    """RQ's own count: the finished-job registry."""
    from rq import Queue

    return int(Queue(QUEUE, connection=redis.Redis.from_url(url)).finished_job_registry.count)


# -- Dramatiq -----------------------------------------------------------------------------------


def _dramatiq_actor(url: str) -> Any:
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=url)
    dramatiq.set_broker(broker)

    @dramatiq.actor(queue_name=QUEUE, actor_name="noop")
    def noop() -> None:
        count_sync()

    return broker, noop


def dramatiq_enqueue(url: str, n: int) -> float:
    """Dramatiq: ``actor.send()`` one message at a time."""
    _, noop = _dramatiq_actor(url)
    return timed(n, noop.send)


def dramatiq_work(url: str) -> None:
    """Dramatiq: one process, a ``Worker`` with 8 threads."""
    import dramatiq

    broker, _ = _dramatiq_actor(url)
    worker = dramatiq.Worker(broker, worker_threads=THREADS)
    worker.start()
    block_until_signal()
    worker.stop()


# -- Celery -------------------------------------------------------------------------------------


def _celery_app(url: str) -> Any:
    from celery import Celery

    app = Celery("peerbench", broker=url)
    app.conf.task_ignore_result = True
    app.conf.task_default_queue = QUEUE
    app.conf.broker_connection_retry_on_startup = True

    @app.task(name="noop")
    def noop() -> None:
        count_sync()

    return app, noop


def celery_enqueue(url: str, n: int) -> float:
    """Celery: ``task.delay()`` one message at a time (results ignored)."""
    _, noop = _celery_app(url)
    return timed(n, noop.delay)


def celery_work(url: str) -> None:
    """Celery: one worker in the ``solo`` pool (no fork), without gossip, mingle, heartbeat."""
    app, _ = _celery_app(url)
    app.worker_main(
        ["worker", "--pool=solo", "--loglevel=WARNING", "-Q", QUEUE,
         "--without-gossip", "--without-mingle", "--without-heartbeat"]
    )  # fmt: skip


# -- Huey ---------------------------------------------------------------------------------------


def _huey_app(url: str) -> Any:
    from huey import RedisHuey

    huey = RedisHuey(QUEUE, url=url)

    @huey.task(name="noop")
    def noop() -> None:
        count_sync()

    return huey, noop


def huey_enqueue(url: str, n: int) -> float:
    """Huey: calling the task enqueues it, one at a time."""
    _, noop = _huey_app(url)
    return timed(n, noop)


def huey_work(url: str) -> None:
    """Huey: the consumer with 8 thread workers."""
    huey, _ = _huey_app(url)
    huey.create_consumer(workers=THREADS, worker_type="thread").run()


# -- arq ----------------------------------------------------------------------------------------


async def arq_noop(ctx: dict[str, Any]) -> None:
    """arq's no-op task."""
    await count_async()


def arq_enqueue(url: str, n: int) -> float:
    """arq: ``ArqRedis.enqueue_job`` one at a time."""
    from arq import create_pool
    from arq.connections import RedisSettings

    async def main() -> float:
        pool = await create_pool(RedisSettings.from_dsn(url), default_queue_name=QUEUE)
        return await timed_async(n, lambda: pool.enqueue_job("arq_noop"))

    return asyncio.run(main())


def arq_work(url: str) -> None:
    """arq: one worker, 64 jobs at once (``max_jobs``), burst mode (exits once empty)."""
    from arq import Worker
    from arq.connections import RedisSettings

    Worker(
        functions=[arq_noop], redis_settings=RedisSettings.from_dsn(url), queue_name=QUEUE,
        max_jobs=TASKS, burst=True, log_results=False,
    ).run()  # fmt: skip
    block_until_signal()


# -- SAQ ----------------------------------------------------------------------------------------


async def saq_noop(ctx: dict[str, Any]) -> None:
    """SAQ's no-op task."""
    await count_async()


def saq_enqueue(url: str, n: int) -> float:
    """SAQ: ``Queue.enqueue`` one job at a time."""
    from saq import Queue

    async def main() -> float:
        queue = Queue.from_url(url, name=QUEUE)
        await queue.connect()
        return await timed_async(n, lambda: queue.enqueue("saq_noop"))

    return asyncio.run(main())


def saq_work(url: str) -> None:
    """SAQ: one worker, 64 jobs at once (``concurrency``)."""
    from saq import Queue, Worker

    async def main() -> None:
        queue = Queue.from_url(url, name=QUEUE)
        await queue.connect()
        worker = Worker(queue, functions=[saq_noop], concurrency=TASKS)
        await worker.start()

    asyncio.run(main())


# -- BullMQ (Python) ----------------------------------------------------------------------------


def bullmq_enqueue(url: str, n: int) -> float:
    """BullMQ: ``Queue.add`` one job at a time."""
    from bullmq import Queue

    async def main() -> float:
        queue = Queue(QUEUE, {"connection": url})
        seconds = await timed_async(n, lambda: queue.add("noop", {}))
        await queue.close()
        return seconds

    return asyncio.run(main())


def bullmq_work(url: str) -> None:
    """BullMQ: one ``Worker``, 64 jobs at once (``concurrency``)."""
    from bullmq import Worker

    async def process(job: Any, token: str) -> None:
        await count_async()

    async def main() -> None:
        Worker(QUEUE, process, {"connection": url, "concurrency": TASKS})
        await asyncio.Event().wait()

    asyncio.run(main())


def bullmq_count(url: str) -> int | None:
    """BullMQ's own count: ``getJobCounts("completed")``."""
    from bullmq import Queue

    async def main() -> int:
        queue = Queue(QUEUE, {"connection": url})
        counts = await queue.getJobCounts("completed")
        await queue.close()
        return int(counts["completed"])

    return asyncio.run(main())


# -- the registry ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """One contender: its label, the module it needs, how it is run."""

    label: str
    module: str
    mode: str
    enqueue: Callable[[str, int], float]
    work: Callable[[str], None]
    count: Callable[[str], int | None] | None = None

    def installed(self) -> bool:
        """True when the peer's package can be imported here."""
        return importlib.util.find_spec(self.module) is not None


PEERS: dict[str, Peer] = {
    "scheduler-threads": Peer(
        "scheduler (this project), Worker", "scheduler",
        f"Worker, {THREADS} threads, prefetch {PREFETCH}",
        scheduler_enqueue, scheduler_work_threads, scheduler_count,
    ),
    "scheduler-asyncio": Peer(
        "scheduler (this project), AsyncWorker", "scheduler", f"AsyncWorker, {TASKS} tasks",
        scheduler_enqueue, scheduler_work_asyncio, scheduler_count,
    ),
    "rq": Peer("RQ", "rq", "SimpleWorker, burst", rq_enqueue, rq_work, rq_count),
    "dramatiq": Peer(
        "Dramatiq", "dramatiq", f"1 process, {THREADS} threads", dramatiq_enqueue, dramatiq_work
    ),
    "celery": Peer(
        "Celery", "celery", "solo pool, no gossip/mingle/heartbeat", celery_enqueue, celery_work
    ),
    "arq": Peer("arq", "arq", f"max_jobs {TASKS}, burst", arq_enqueue, arq_work),
    "saq": Peer("SAQ", "saq", f"concurrency {TASKS}", saq_enqueue, saq_work),
    "huey": Peer("Huey", "huey", f"consumer, {THREADS} threads", huey_enqueue, huey_work),
    "bullmq": Peer(
        "BullMQ (Python)", "bullmq", f"concurrency {TASKS}", bullmq_enqueue, bullmq_work,
        bullmq_count,
    ),
}  # fmt: skip


def wait_for_count(peer: Peer, url: str, n: int, timeout_s: float = 30.0) -> int | None:
    """The peer's own count of completed jobs, once it reaches ``n`` (or after ``timeout_s``);
    None for a peer that keeps no such count."""
    if peer.count is None:
        return None
    deadline = time.monotonic() + timeout_s
    while (completed := peer.count(url)) is not None and completed < n:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return completed


def child(role: str, name: str, url: str, n: int = 0) -> None:
    """What a child process runs (see the module docstring)."""
    global _url
    _url = url
    logging.basicConfig(level=logging.WARNING)
    peer = PEERS[name]
    if role == "enqueue":
        print(json.dumps({"seconds": peer.enqueue(url, n)}), flush=True)
    elif role == "work":
        peer.work(url)
    elif role == "count":
        print(json.dumps({"completed": wait_for_count(peer, url, n)}), flush=True)
    else:
        raise SystemExit(f"unknown role {role}")


if __name__ == "__main__":
    # Through the module's own name, so that peers which import tasks by dotted path (RQ) find
    # ``benchmarks._peers.rq_noop`` rather than ``__main__.rq_noop``.
    from benchmarks import _peers

    _peers.child(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]) if sys.argv[4:] else 0)
