"""The exceptions this package raises, all under one base::

    SchedulerError                 anything this package raises on purpose
    ├── ConfigError                bad settings: a queue name, a prefix, a Redis client set up wrong
    ├── ValidationError            a bad argument to a call, refused before anything is sent
    │   └── PayloadError           a payload or result that cannot be encoded or decoded, or too big
    ├── JobError                   about one job; carries ``queue`` and ``job_id``
    │   ├── JobNotFound            no job with that id (never enqueued, or trimmed)
    │   ├── DuplicateJob           a job with that id exists already
    │   ├── InvalidState           the job is in a state the call does not apply to; ``state``
    │   ├── LeaseLost              the lease token is not the job's current, unexpired lease
    │   └── RecordUnreadable       the job's record is of a newer version, or corrupt; ``record``
    ├── ScriptError                a script replied with something the client did not expect
    ├── ServerFull                 Redis is at maxmemory and refuses new jobs (also a redis-py
    │                              ``OutOfMemoryError``, so existing handlers of it still work)
    └── WorkerCrashed              a worker stopped because one of its helpers (claim,
                                   acknowledge, heartbeat, reap) failed unexpectedly; the
                                   original error is its ``__cause__``

Other errors from redis-py (``redis.ConnectionError``, ``redis.TimeoutError`` and the rest) pass
through unwrapped: a lost reply means the outcome is unknown, and every call in this package is
safe to repeat.
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import OutOfMemoryError


class SchedulerError(Exception):
    """Base of every exception this package raises on purpose."""


class ConfigError(SchedulerError):
    """A setting is invalid: a queue name, a prefix, a limit, a Redis client set up wrong."""


class ValidationError(SchedulerError, ValueError):
    """An argument to a call is invalid. Raised before anything is sent to Redis."""


class PayloadError(ValidationError):
    """A payload or result cannot be encoded or decoded, or is over the size limit."""


class JobError(SchedulerError):
    """An error about one job of one queue."""

    def __init__(self, message: str, *, queue: str, job_id: str) -> None:
        super().__init__(f"{message} (queue {queue!r}, job {job_id!r})")
        self.queue = queue
        self.job_id = job_id


class JobNotFound(JobError):
    """No job with that id: never enqueued, or its record was trimmed after its retention."""


class DuplicateJob(JobError):
    """A job with that id exists already."""


class InvalidState(JobError):
    """The job is in a state the call does not apply to; ``state`` says which."""

    def __init__(self, message: str, *, queue: str, job_id: str, state: str) -> None:
        super().__init__(f"{message}: job is {state}", queue=queue, job_id=job_id)
        self.state = state


class LeaseLost(JobError):
    """The lease token is not the job's current, unexpired lease.

    The job may have been reaped and handed to another worker. The caller must not commit any
    side effect for it: whatever it was doing is now another worker's to do.
    """


class RecordUnreadable(JobError):
    """The job's record is one this version of the package cannot read: written by a newer
    version (left untouched for it) or corrupt (moved to the queue's quarantine). Nothing was
    changed. ``record`` holds what is stored, when the call read it (``Queue.inspect``)."""

    def __init__(self, message: str, *, queue: str, job_id: str, record: Any = None) -> None:
        super().__init__(message, queue=queue, job_id=job_id)
        self.record = record


class ScriptError(SchedulerError):
    """A script replied with something the client did not expect (or refused an argument)."""

    def __init__(self, message: str, *, script: str) -> None:
        super().__init__(f"{script}: {message}")
        self.script = script


class ServerFull(SchedulerError, OutOfMemoryError):
    """Redis reached ``maxmemory`` (with the ``noeviction`` policy) and refused the call;
    nothing changed. Enqueue is refused, while claims, acknowledgements and reaping (scripts
    flagged ``allow-oom``) go on, so workers drain the queue and free memory."""

    def __init__(self, message: str, *, queue: str) -> None:
        super().__init__(f"{message} (queue {queue!r})")
        self.queue = queue


class WorkerCrashed(SchedulerError):
    """A worker stopped because one of its helpers (claiming, acknowledging, heartbeating,
    reaping) raised an unexpected error: a bug or a broken setup, not a bad job. Its original
    error is the ``__cause__``, and was logged with its traceback.

    By then the worker had stopped claiming and heartbeating (so leases it could not
    acknowledge expire and other workers take the jobs) and handed back what it could. A
    process supervisor should restart it.
    """

    def __init__(self, message: str, *, worker_id: str) -> None:
        super().__init__(f"{message} (worker {worker_id!r})")
        self.worker_id = worker_id
