"""Both workers behind one interface, so one behavioural test runs against each
(``@pytest.mark.parametrize("kind", KINDS)``):

* :class:`RunningWorker` runs a thread :class:`~scheduler.worker.Worker` or an
  :class:`~scheduler.aio_worker.AsyncWorker` (on an event loop of its own, in a thread) on a
  queue of the test Redis; the test thread starts it, stops it (``stop()`` is thread-safe for
  both) and joins it, and reads the error ``run()`` raised, if any;
* :class:`Calls` records every call the worker's queue makes (method, size, time) and raises an
  injected ``RuntimeError`` at a chosen call;
* :class:`Behaviour` is the handler, sync or async alike, driven by each job's payload:
  ``{"do": "hold", "s": 2}`` waits (until cancelled), ``{"do": "raise"}`` raises (``"raise_first"``:
  on the first attempt only), ``{"do": "set"}`` returns a set (msgpack cannot encode it),
  anything else is returned as the result.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import redis
import redis.asyncio

from scheduler import Job, Queue
from scheduler.aio import AsyncQueue
from scheduler.aio_worker import AsyncWorker
from scheduler.worker import JobContext, Worker

KINDS = ("thread", "asyncio")
DEADLINE_S = 20.0


def eventually(check: Callable[[], bool], what: str, timeout_s: float = DEADLINE_S) -> float:
    """Poll ``check`` every 10 ms until it holds (failing after ``timeout_s``); returns how long
    it took."""
    began = time.monotonic()
    pause = threading.Event()
    while not check():
        if time.monotonic() - began > timeout_s:
            raise AssertionError(f"timed out after {timeout_s} s waiting until {what}")
        pause.wait(0.01)
    return time.monotonic() - began


def hold(seconds: float) -> dict[str, Any]:
    """The payload of a job that runs for ``seconds`` unless cancelled."""
    return {"do": "hold", "s": seconds}


class Calls:
    """The calls a worker's queue made, and a fault to inject: ``faults={"claim": 2}`` makes
    the second ``claim`` raise ``RuntimeError`` before anything is sent."""

    def __init__(self, faults: dict[str, int] | None = None) -> None:
        self.faults = dict(faults or {})
        self.failed_at: float | None = None
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._log: list[tuple[float, str, int]] = []

    def note(self, method: str, size: int) -> None:
        """Record a call (raising the injected fault instead, at its turn)."""
        with self._lock:
            self._counts[method] += 1
            if self.faults.get(method) == self._counts[method]:
                self.failed_at = time.monotonic()
                raise RuntimeError(f"injected into {method}")
            self._log.append((time.monotonic(), method, size))

    def sizes(self, method: str) -> list[int]:
        """The size (jobs, leases, items) of each call of ``method`` that was made."""
        with self._lock:
            return [size for _, name, size in self._log if name == method]

    def times(self, method: str) -> list[float]:
        """When each call of ``method`` that was made began (monotonic)."""
        with self._lock:
            return [at for at, name, _ in self._log if name == method]


class RecordedQueue(Queue):
    """A :class:`Queue` that tells :class:`Calls` about each call a worker makes."""

    calls: Calls

    def claim(self, worker_id: str, **kwargs: Any) -> Any:
        self.calls.note("claim", kwargs.get("count", 1))
        return super().claim(worker_id, **kwargs)

    def complete_many(self, items: Sequence[Any]) -> Any:
        self.calls.note("complete_many", len(items))
        return super().complete_many(items)

    def fail(self, lease: Any, error: str, **kwargs: Any) -> Any:
        self.calls.note("fail", 1)
        return super().fail(lease, error, **kwargs)

    def heartbeat(self, leases: Sequence[Any], **kwargs: Any) -> Any:
        self.calls.note("heartbeat", len(leases))
        return super().heartbeat(leases, **kwargs)

    def release(self, leases: Sequence[Any], **kwargs: Any) -> Any:
        self.calls.note("release", len(leases))
        return super().release(leases, **kwargs)

    def reap(self, **kwargs: Any) -> Any:
        self.calls.note("reap", kwargs.get("limit", 0))
        return super().reap(**kwargs)


class RecordedAsyncQueue(AsyncQueue):
    """:class:`RecordedQueue` for asyncio."""

    calls: Calls

    async def claim(self, worker_id: str, **kwargs: Any) -> Any:
        self.calls.note("claim", kwargs.get("count", 1))
        return await super().claim(worker_id, **kwargs)

    async def complete_many(self, items: Sequence[Any]) -> Any:
        self.calls.note("complete_many", len(items))
        return await super().complete_many(items)

    async def fail(self, lease: Any, error: str, **kwargs: Any) -> Any:
        self.calls.note("fail", 1)
        return await super().fail(lease, error, **kwargs)

    async def heartbeat(self, leases: Sequence[Any], **kwargs: Any) -> Any:
        self.calls.note("heartbeat", len(leases))
        return await super().heartbeat(leases, **kwargs)

    async def release(self, leases: Sequence[Any], **kwargs: Any) -> Any:
        self.calls.note("release", len(leases))
        return await super().release(leases, **kwargs)

    async def reap(self, **kwargs: Any) -> Any:
        self.calls.note("reap", kwargs.get("limit", 0))
        return await super().reap(**kwargs)


class Behaviour:
    """The handler of both kinds (see the module docstring); records what each run did."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[tuple[str, str, str]] = []  # (job id, token, what)

    def note(self, job: Job, what: str) -> None:
        with self._lock:
            self.events.append((job.id, job.token, what))

    def seen(self, what: str) -> list[str]:
        """The ids of the jobs whose run recorded ``what`` (``start``, ``cancelled``, ``end``)."""
        with self._lock:
            return [job_id for job_id, _, kind in self.events if kind == what]

    @staticmethod
    def _plan(job: Job) -> tuple[str, Any]:
        payload = job.payload
        if isinstance(payload, dict) and "do" in payload:
            return str(payload["do"]), payload.get("s", 0)
        return "return", payload

    def sync(self, job: Job, context: JobContext) -> Any:
        """The thread worker's handler."""
        self.note(job, "start")
        do, arg = self._plan(job)
        if do == "hold" and context.cancelled.wait(arg):
            self.note(job, "cancelled")
            return "cancelled"
        return self._end(job, do, arg)

    async def coroutine(self, job: Job, context: JobContext) -> Any:
        """The asyncio worker's handler."""
        self.note(job, "start")
        do, arg = self._plan(job)
        if do == "hold":
            try:
                await asyncio.sleep(arg)
            except asyncio.CancelledError:
                self.note(job, "cancelled")
                raise
        return self._end(job, do, arg)

    def _end(self, job: Job, do: str, arg: Any) -> Any:
        self.note(job, "end")
        if do == "raise" or (do == "raise_first" and job.attempt == 1):
            raise RuntimeError("the handler failed")
        if do == "set":
            return {1, 2}
        return arg if do == "return" else "held"


class RunningWorker:
    """One worker of ``kind`` on queue ``name`` of the Redis at ``url``, run in a thread."""

    def __init__(
        self,
        kind: str,
        url: str,
        name: str = "test",
        *,
        behaviour: Behaviour | None = None,
        calls: Calls | None = None,
        client_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        self.kind, self.url, self.name = kind, url, name
        self.behaviour = behaviour or Behaviour()
        self.calls = calls or Calls()
        self.client_options = {"socket_timeout": 5, **(client_options or {})}
        self.options = options
        self.worker: Worker | AsyncWorker | None = None
        self.error: BaseException | None = None
        self.stop_asked_at: float | None = None
        self.ended_at: float | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True, name=f"{kind}-worker")

    def start(self) -> RunningWorker:
        """Start it; return once the worker exists."""
        self._thread.start()
        assert self._ready.wait(DEADLINE_S), "the worker did not start"
        return self

    def stop(self) -> None:
        """Ask it to stop (from the test's thread: thread-safe for both kinds)."""
        self.stop_asked_at = time.monotonic()
        assert self.worker is not None
        self.worker.stop()

    def join(self, timeout_s: float = DEADLINE_S) -> float:
        """Wait until ``run()`` returned or raised; how long after :meth:`stop` that was."""
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), f"the {self.kind} worker did not end in {timeout_s} s"
        assert self.ended_at is not None
        return self.ended_at - (self.stop_asked_at or self.ended_at)

    def stop_and_join(self, timeout_s: float = DEADLINE_S) -> float:
        """:meth:`stop`, then :meth:`join`."""
        self.stop()
        return self.join(timeout_s)

    def _main(self) -> None:
        try:
            if self.kind == "thread":
                self._run_thread_worker()
            else:
                asyncio.run(self._run_async_worker())
        except BaseException as exc:
            self.error = exc
        finally:
            self.ended_at = time.monotonic()
            self._ready.set()

    def _run_thread_worker(self) -> None:
        client = redis.Redis.from_url(self.url, **self.client_options)
        queue = RecordedQueue(client, self.name)
        queue.calls = self.calls
        try:
            worker = Worker(queue, self.behaviour.sync, **self.options)
            self.worker = worker
            self._ready.set()
            worker.run()
        finally:
            client.close()

    async def _run_async_worker(self) -> None:
        client = redis.asyncio.Redis.from_url(self.url, **self.client_options)
        queue = RecordedAsyncQueue(client, self.name)
        queue.calls = self.calls
        try:
            worker = AsyncWorker(queue, self.behaviour.coroutine, **self.options)
            self.worker = worker
            self._ready.set()
            await worker.run()
        finally:
            await client.aclose()
