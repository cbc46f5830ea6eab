"""Benchmark agents: child processes (``spawn``: fresh interpreters) that enqueue or run a worker
on command, so producers and workers run in processes of their own.

The parent sends ``(task, params)`` over a pipe; the agent gets everything ready (clients,
scripts loaded, the worker built), answers ``"ready"`` and waits for ``"go"``. So the parent
starts its clock once *every* agent is ready. A producer answers ``("done", info)`` after its
last reply; a worker runs until the parent sends ``"stop"``, then answers ``("stopped", info)``.

    with AgentPool(4) as pool:
        pool.prepare(2, "drain_sync", url=url, queue="bench", concurrency=8)
        began = time.perf_counter(); pool.go(2)
        ...
        infos = pool.stop(2)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any

import redis
import redis.asyncio

from scheduler import ItemStatus, Job, JobSpec, Queue
from scheduler.aio import AsyncQueue
from scheduler.aio_worker import AsyncWorker
from scheduler.worker import JobContext, Worker

READY_TIMEOUT_S = 60.0
SYNC_THREADS = 8
"""Threads of the thread ``Worker`` in every benchmark."""
SYNC_PREFETCH = 100
"""Jobs the thread ``Worker`` leases ahead of a free thread (its documented knob for many
short jobs; the default is as many as its threads)."""
ASYNC_TASKS = 64
"""Concurrent tasks of the ``AsyncWorker`` in every benchmark."""


def noop(job: Job, context: JobContext) -> None:
    """The no-op job handler of the thread worker."""
    return None


async def async_noop(job: Job, context: JobContext) -> None:
    """The no-op job handler of the asyncio worker."""
    return None


# -- what an agent can do (run in the child) ---------------------------------------------------


def _await_go(conn: Connection) -> None:
    conn.send("ready")
    message = conn.recv()
    if message != "go":
        raise RuntimeError(f"agent expected 'go', got {message!r}")


def produce(
    conn: Connection, url: str, queue: str, payload_bytes: int, count: int, batch: int
) -> None:
    """Enqueue ``count`` jobs of ``payload_bytes`` bytes: one at a time (``batch`` 1) or with
    ``enqueue_many`` in batches (specs built before the clock)."""
    client = redis.Redis.from_url(url, socket_timeout=30)
    target = Queue(client, queue)
    payload = b"x" * payload_bytes
    target.stats(active_limit=0)  # connection open, scripts loaded
    batches = [
        [JobSpec(payload) for _ in range(start, min(count, start + batch))]
        for start in range(0, count, batch)
    ]
    _await_go(conn)
    if batch == 1:
        for _ in range(count):
            target.enqueue(payload)
    else:
        for specs in batches:
            target.enqueue_many(specs)
    conn.send(("done", {"jobs": count}))
    client.close()


def _stop_on_message(conn: Connection, stop: Callable[[], None]) -> threading.Thread:
    def watch() -> None:
        message = conn.recv()
        if message != "stop":
            raise RuntimeError(f"agent expected 'stop', got {message!r}")
        stop()

    thread = threading.Thread(target=watch, name="agent-stop", daemon=True)
    thread.start()
    return thread


class TimedQueue(Queue):
    """A ``Queue`` that notes, for every job it acknowledges, when ``complete_many`` returned
    (the server's reply received): ``acked[job_id] = time.monotonic_ns()``."""

    acked: dict[str, int]

    def complete_many(self, items: Sequence[tuple[Any, Any]]) -> list[ItemStatus]:
        """Complete as usual, then note the time of the reply for each job."""
        statuses = super().complete_many(items)
        now = time.monotonic_ns()
        for status in statuses:
            self.acked[status.id] = now
        return statuses


class TimedAsyncQueue(AsyncQueue):
    """The asyncio twin of :class:`TimedQueue`."""

    acked: dict[str, int]

    async def complete_many(self, items: Sequence[tuple[Any, Any]]) -> list[ItemStatus]:
        """Complete as usual, then note the time of the reply for each job."""
        statuses = await super().complete_many(items)
        now = time.monotonic_ns()
        for status in statuses:
            self.acked[status.id] = now
        return statuses


def _latencies(
    started: dict[str, int], sent: dict[str, int], acked: dict[str, int]
) -> dict[str, list[list[int]]]:
    """Per job acknowledged: ``[sent_ns, ns to the handler's start, ns to the ack]``."""
    return {
        "jobs": [[sent[i], started[i] - sent[i], acked[i] - sent[i]] for i in acked if i in started]
    }


def drain_sync(conn: Connection, url: str, queue: str, timed: bool = False) -> None:
    """Run a thread ``Worker`` (no-op handler) until told to stop. With ``timed``, the jobs'
    payloads carry their enqueue time (``{"t": monotonic_ns}``) and the agent answers with each
    job's latency to start and to ack."""
    client = redis.Redis.from_url(url, socket_timeout=30)
    target = TimedQueue(client, queue)
    target.acked = {}
    sent: dict[str, int] = {}
    started: dict[str, int] = {}

    def timed_noop(job: Job, context: JobContext) -> None:
        started[job.id] = time.monotonic_ns()
        sent[job.id] = job.payload["t"]

    worker = Worker(
        target,
        timed_noop if timed else noop,
        concurrency=SYNC_THREADS,
        prefetch=SYNC_PREFETCH,
        max_idle_s=0.5,
    )
    target.stats(active_limit=0)
    _await_go(conn)
    _stop_on_message(conn, worker.stop)
    worker.run()
    info: dict[str, Any] = {"acked": len(target.acked)}
    if timed:
        info.update(_latencies(started, sent, target.acked))
    conn.send(("stopped", info))
    client.close()


async def _drain_async(conn: Connection, url: str, queue: str, timed: bool) -> dict[str, Any]:
    client = redis.asyncio.Redis.from_url(url, socket_timeout=30)
    target = TimedAsyncQueue(client, queue)
    target.acked = {}
    sent: dict[str, int] = {}
    started: dict[str, int] = {}

    async def timed_noop(job: Job, context: JobContext) -> None:
        started[job.id] = time.monotonic_ns()
        sent[job.id] = job.payload["t"]

    worker = AsyncWorker(
        target, timed_noop if timed else async_noop, concurrency=ASYNC_TASKS, max_idle_s=0.5
    )
    await target.stats(active_limit=0)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, _await_go, conn)
    _stop_on_message(conn, lambda: loop.call_soon_threadsafe(worker.stop))
    await worker.run()
    info: dict[str, Any] = {"acked": len(target.acked)}
    if timed:
        info.update(_latencies(started, sent, target.acked))
    await client.aclose()
    return info


def drain_async(conn: Connection, url: str, queue: str, timed: bool = False) -> None:
    """Run an ``AsyncWorker`` (no-op handler) until told to stop; see :func:`drain_sync`."""
    conn.send(("stopped", asyncio.run(_drain_async(conn, url, queue, timed))))


TASKS: dict[str, Callable[..., None]] = {
    "produce": produce,
    "drain_sync": drain_sync,
    "drain_async": drain_async,
}


def agent_main(conn: Connection) -> None:
    """The child's loop: run each ``(task, params)`` received until ``None`` arrives."""
    logging.getLogger("scheduler").setLevel(logging.ERROR)  # not the throwaway server's warnings
    while True:
        message = conn.recv()
        if message is None:
            return
        task, params = message
        try:
            TASKS[task](conn, **params)
        except Exception as exc:
            conn.send(("error", repr(exc)))
            raise


# -- the parent's side -------------------------------------------------------------------------


class AgentPool:
    """``size`` agent processes, started once and reused for every measurement."""

    def __init__(self, size: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.conns: list[Connection] = []
        self.processes: list[BaseProcess] = []
        for slot in range(size):
            parent, child = context.Pipe()
            process = context.Process(
                target=agent_main, args=(child,), name=f"bench-agent-{slot}", daemon=True
            )
            process.start()
            child.close()
            self.conns.append(parent)
            self.processes.append(process)

    def _receive(self, conn: Connection, expected: str, timeout_s: float) -> Any:
        if not conn.poll(timeout_s):
            raise RuntimeError(f"an agent did not answer {expected!r} within {timeout_s} s")
        message = conn.recv()
        kind = message if isinstance(message, str) else message[0]
        if kind != expected:
            raise RuntimeError(f"an agent answered {message!r} instead of {expected!r}")
        return None if isinstance(message, str) else message[1]

    def prepare(self, count: int, task: str, params: Sequence[dict[str, Any]]) -> None:
        """Give the first ``count`` agents ``task`` (``params[i]`` for agent i); return once
        every one of them is ready."""
        for conn, kwargs in zip(self.conns[:count], params, strict=True):
            conn.send((task, kwargs))
        for conn in self.conns[:count]:
            self._receive(conn, "ready", READY_TIMEOUT_S)

    def go(self, count: int) -> None:
        """Let the first ``count`` (ready) agents start."""
        for conn in self.conns[:count]:
            conn.send("go")

    def wait_done(self, count: int, timeout_s: float) -> list[dict[str, Any]]:
        """Wait for the first ``count`` producers to finish; their answers."""
        return [self._receive(conn, "done", timeout_s) for conn in self.conns[:count]]

    def stop(self, count: int, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        """Stop the first ``count`` workers; their answers."""
        for conn in self.conns[:count]:
            conn.send("stop")
        return [self._receive(conn, "stopped", timeout_s) for conn in self.conns[:count]]

    def close(self) -> None:
        """End every agent (kill those that do not exit within 10 s)."""
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(None)
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(5)
        for conn in self.conns:
            conn.close()

    def __enter__(self) -> AgentPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
