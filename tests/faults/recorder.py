"""Clients and handlers that write what they do to a history.

:class:`RecordingQueue` is a :class:`~scheduler.Queue` whose every call writes an ``invoke``
record first and then ``ok`` (with each item's status), ``fail`` (a definite refusal) or
``unknown`` (a connection error or timeout: the reply was lost, the call may have run). A
:class:`~scheduler.worker.Worker` given one records its claims, heartbeats, completions,
failures and hand-backs without knowing it. :class:`RecordingHandler` records the side effect
of each job (``effect_start`` and ``effect_end`` with the lease token).

A job's payload may ask the handler for something else than a plain side effect: a map
``{"effect_s": S}`` makes the side effect last ``S`` seconds (it never looks at the job's cancel
flag: a job that outlives a worker's grace period), ``{"returns": KIND}`` makes the handler
return a value of a kind msgpack cannot encode (:data:`UNENCODABLE`).

A ``hook(point)`` callable, when given, is called at fixed points (``before_ack`` and
``after_ack`` around a completion; ``before_effect``, ``during_effect`` and ``after_effect``
in the handler): the fault tests use it to kill the process exactly there.
"""

from __future__ import annotations

import datetime
import decimal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis

from scheduler import (
    Claimed,
    Enqueued,
    Failed,
    Heartbeat,
    ItemStatus,
    Job,
    JobOptions,
    JobSpec,
    LeaseLost,
    Queue,
    Reaped,
)
from scheduler.worker import JobContext
from tests.faults.history import HistoryWriter

Hook = Callable[[str], None]
"""Called with the name of a point the process has reached."""

LOST_REPLY_ERRORS = (redis.ConnectionError, redis.TimeoutError)
"""Errors after which the outcome of a call is unknown (the command may have run)."""

Items = Sequence[tuple[str | None, str | None]]
"""The (job id, token) pairs a call is about."""


def _no_hook(point: str) -> None:
    """The default hook: do nothing."""


@dataclass(frozen=True)
class Point:
    """A dataclass: a result msgpack cannot encode."""

    x: int
    y: int


UNENCODABLE: dict[str, tuple[Callable[[], Any], str]] = {
    "set": (lambda: {1, 2}, "(a set)"),
    "datetime": (lambda: datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC), "(a datetime)"),
    "decimal": (lambda: decimal.Decimal("1.10"), "(a Decimal)"),
    "dataclass": (lambda: Point(1, 2), "(a Point)"),
}
"""Results msgpack cannot encode, by kind: how to make one, and how the error names it."""


class RecordingQueue(Queue):
    """A queue whose calls are written to ``history`` as participant ``process``.

    Enqueue needs an explicit job id (so that the history names every job it asked for).
    """

    def __init__(
        self,
        client: Any,
        name: str,
        *,
        history: HistoryWriter,
        process: str,
        hook: Hook = _no_hook,
        **kwargs: Any,
    ) -> None:
        super().__init__(client, name, **kwargs)
        self.history = history
        self.process = process
        self.hook = hook

    @contextmanager
    def _recorded(self, op: str, items: Items) -> Iterator[int]:
        """Write the invoke records; on an exception, its ``fail`` or ``unknown`` records."""
        call = self.history.new_call()
        for job_id, token in items or [(None, None)]:
            self.history.write(self.process, "invoke", op, call=call, job_id=job_id, token=token)
        try:
            yield call
        except Exception as exc:
            kind = "unknown" if isinstance(exc, LOST_REPLY_ERRORS) else "fail"
            error = f"{type(exc).__name__}: {exc}"[:200]
            for job_id, token in items or [(None, None)]:
                self.history.write(
                    self.process, kind, op, call=call, job_id=job_id, token=token, error=error
                )
            raise

    def _ok(self, op: str, call: int, job_id: str | None, token: str | None, status: str) -> None:
        self.history.write(
            self.process, "ok", op, call=call, job_id=job_id, token=token, status=status
        )

    def enqueue(
        self, payload: Any, *, id: str | None = None, options: JobOptions | None = None
    ) -> Enqueued:
        """Enqueue one job with its id, recorded."""
        if id is None:
            raise ValueError("a recorded enqueue needs a job id")
        with self._recorded("enqueue", [(id, None)]) as call:
            done = super().enqueue(payload, id=id, options=options)
        self._ok("enqueue", call, id, None, "created" if done.created else "exists")
        return done

    def enqueue_many(self, specs: Sequence[JobSpec]) -> list[Enqueued]:
        """Enqueue a batch of jobs with ids, recorded."""
        if any(spec.id is None for spec in specs):
            raise ValueError("a recorded enqueue needs a job id")
        with self._recorded("enqueue", [(spec.id, None) for spec in specs]) as call:
            done = super().enqueue_many(specs)
        for item in done:
            self._ok("enqueue", call, item.id, None, "created" if item.created else "exists")
        return done

    def claim(self, worker_id: str, **kwargs: Any) -> Claimed:
        """Claim, recorded: the ``ok`` names every lease handed out."""
        with self._recorded("claim", []) as call:
            claimed = super().claim(worker_id, **kwargs)
        for job in claimed.jobs:
            self._ok("claim", call, job.id, job.token, "repeated" if claimed.repeated else "ok")
        if not claimed.jobs:
            self._ok("claim", call, None, None, "empty")
        return claimed

    def complete(self, lease: Any, result: Any = None) -> bool:
        """Complete one lease, recorded (``lease_lost`` is a ``fail`` record)."""
        statuses = self.complete_many([(lease, result)])
        if statuses[0].status.value == "lease_lost":
            raise LeaseLost("lease lost", queue=self.name, job_id=lease.id)
        return statuses[0].status.value == "ok"

    def complete_many(self, items: Sequence[tuple[Any, Any]]) -> list[ItemStatus]:
        """Complete many leases, recorded with each item's status."""
        self.hook("before_ack")
        with self._recorded("complete", [(job.id, job.token) for job, _ in items]) as call:
            statuses = super().complete_many(items)
        for (job, _), item in zip(items, statuses, strict=True):
            self._ok("complete", call, job.id, job.token, item.status.value)
        self.hook("after_ack")
        return statuses

    def fail(self, lease: Any, error: str, **kwargs: Any) -> Failed:
        """Fail one lease, recorded with the outcome (``retry`` or ``dead``)."""
        with self._recorded("fail", [(lease.id, lease.token)]) as call:
            failed = super().fail(lease, error, **kwargs)
        self._ok("fail", call, lease.id, lease.token, failed.outcome.value)
        return failed

    def heartbeat(self, leases: Sequence[Any], **kwargs: Any) -> Heartbeat:
        """Extend leases, recorded: ``lost`` for each lease the reply names."""
        with self._recorded("heartbeat", [(job.id, job.token) for job in leases]) as call:
            beat = super().heartbeat(leases, **kwargs)
        lost = set(beat.lost)
        for job in leases:
            self._ok("heartbeat", call, job.id, job.token, "lost" if job.id in lost else "ok")
        return beat

    def enqueue_raw(self, payload: bytes, *, id: str, options: JobOptions | None = None) -> bool:
        """Enqueue one job with ``payload`` bytes as they are, past the client's own checks (as
        a producer in another language, or with a larger size cap, would), recorded as any
        enqueue. True if created."""
        one = self.ops.enqueue("placeholder", id=id, options=options)
        args = list(one.args)
        args[-2] = payload  # each job is (id, payload, option set): the one payload
        with self._recorded("enqueue", [(id, None)]) as call:
            done = one.parse(self._scripts["enqueue"](keys=one.keys, args=args))
        self._ok("enqueue", call, id, None, "created" if done.created else "exists")
        return done.created

    def release(self, leases: Sequence[Any], **kwargs: Any) -> list[ItemStatus]:
        """Hand leases back, recorded with each item's status."""
        with self._recorded("release", [(job.id, job.token) for job in leases]) as call:
            statuses = super().release(leases, **kwargs)
        for job, item in zip(leases, statuses, strict=True):
            self._ok("release", call, job.id, job.token, item.status.value)
        return statuses

    def reap(self, *, limit: int = 1000) -> Reaped:
        """Reap, recorded (the reply has counts only)."""
        with self._recorded("reap", []) as call:
            reaped = super().reap(limit=limit)
        self._ok("reap", call, None, None, f"requeued={reaped.requeued} dead={reaped.dead}")
        return reaped


class RecordingHandler:
    """A job handler whose side effect is a pause of ``effect_s``, recorded as
    ``effect_start`` and ``effect_end`` with the job's id and lease token; it returns the
    payload, unless the payload asks otherwise (see the module docstring)."""

    def __init__(
        self, history: HistoryWriter, process: str, effect_s: float, hook: Hook = _no_hook
    ) -> None:
        self.history = history
        self.process = process
        self.effect_s = effect_s
        self.hook = hook
        self._pause = threading.Event()  # never set: an interruptible sleep

    def __call__(self, job: Job, context: JobContext) -> Any:
        """Run the job's side effect, recorded."""
        self.hook("before_effect")
        self.history.write(self.process, "effect_start", "effect", job_id=job.id, token=job.token)
        self.hook("during_effect")
        asks = job.payload if isinstance(job.payload, dict) else {}
        self._pause.wait(asks.get("effect_s", self.effect_s))  # the cancel flag is not looked at
        self.history.write(self.process, "effect_end", "effect", job_id=job.id, token=job.token)
        self.hook("after_effect")
        if "returns" in asks:
            make, _ = UNENCODABLE[asks["returns"]]
            return make()
        return job.payload
