"""What a worker's run of one job is made of, shared by both workers and their core: the
settings (checked), the context a handler gets, and how a run's end is turned into what is
sent back (a result already encoded, or an error text), so that nothing a handler returns or
raises can fail more than its own job.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ._codec import Encoded
from ._models import Job
from ._validate import ID_PATTERN, MAX_MS
from .errors import ConfigError

MAX_CONCURRENCY = 10_000
"""The most jobs one worker runs at once."""
MAX_PREFETCH = 10_000
"""The most jobs one worker leases ahead of a free runner."""


class CancelFlag:
    """A flag a worker sets when a job must stop: ``is_set()``, ``set()`` and ``wait(timeout)``,
    as on :class:`threading.Event`, at a fraction of the cost of making one per job (the event
    behind :meth:`wait` is made only when a handler first waits)."""

    __slots__ = ("_event", "_flag")

    _make_lock = threading.Lock()

    def __init__(self) -> None:
        self._flag = False
        self._event: threading.Event | None = None

    def is_set(self) -> bool:
        """True once the job must stop."""
        return self._flag

    def set(self) -> None:
        """Tell the job to stop."""
        self._flag = True
        event = self._event
        if event is not None:
            event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the flag is set or ``timeout`` seconds pass; True if it is set."""
        if self._flag:
            return True
        with CancelFlag._make_lock:
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        if self._flag:  # set() ran before the event existed
            event.set()
        return event.wait(timeout)


@dataclass
class JobContext:
    """What a handler gets besides the job: a cancel flag to look at in long work.

    ``cancelled`` is set when the job's lease was lost (another worker may be running it now),
    when its time limit passed, or when the worker is stopping past its grace period (or
    crashed). The job's result is discarded once it is set.
    """

    job: Job
    worker_id: str
    lease_ms: int
    cancelled: CancelFlag = field(default_factory=CancelFlag)
    started: float = field(default_factory=time.monotonic)
    """When the handler started (monotonic; until then: when the job was claimed)."""
    begun: bool = False
    """True once the handler started (a prefetched job waits for a free runner first)."""
    finished: bool = False
    """True once the handler returned or raised (its acknowledgement may still be on its way)."""


class NonRetryable(Exception):
    """Raise it (or a subclass) from a handler to send the job to the dead letters at once."""


def default_worker_id() -> str:
    """``host-pid-random``: unique per worker, readable in the monitor, and a valid id (ASCII
    letters, digits and ``_ . -`` only)."""
    host = "".join(
        c if (c.isascii() and c.isalnum()) or c in "_.-" else "-" for c in socket.gethostname()
    )[:40]
    return f"{host or 'host'}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


# -- settings ---------------------------------------------------------------------------------


def _check_int(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{what} must be an integer in {low}..{high}, not {value!r:.60}")
    return value


def _check_seconds(value: Any, what: str, *, zero_ok: bool) -> float:
    low = ">= 0" if zero_ok else "> 0"
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not zero_ok)
    ):
        raise ConfigError(f"{what} must be a finite number of seconds {low}, not {value!r:.60}")
    return float(value)


def _check_optional_ms(value: Any, what: str) -> int | None:
    return None if value is None else _check_int(value, what, 1, MAX_MS)


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker runs (see :class:`scheduler.worker.Worker` for each field); every field is
    checked at construction and a bad one raises :class:`~scheduler.errors.ConfigError`."""

    concurrency: int
    worker_id: str
    lease_ms: int | None
    time_limit_ms: int | None
    grace_s: float
    max_idle_s: float
    prefetch: int = 0

    def __post_init__(self) -> None:
        _check_int(self.concurrency, "concurrency", 1, MAX_CONCURRENCY)
        _check_int(self.prefetch, "prefetch", 0, MAX_PREFETCH)
        if not isinstance(self.worker_id, str) or not ID_PATTERN.fullmatch(self.worker_id):
            raise ConfigError(
                f"worker_id must be 1-128 letters, digits or _ . : @ / + = -, "
                f"not {self.worker_id!r:.60}"
            )
        _check_optional_ms(self.lease_ms, "lease_ms")
        _check_optional_ms(self.time_limit_ms, "time_limit_ms")
        _check_seconds(self.grace_s, "grace_s", zero_ok=True)
        _check_seconds(self.max_idle_s, "max_idle_s", zero_ok=False)

    @classmethod
    def build(
        cls,
        concurrency: Any,
        prefetch: Any,
        worker_id: Any,
        lease_ms: Any,
        time_limit_ms: Any,
        grace_s: Any,
        max_idle_s: Any,
    ) -> WorkerSettings:
        """The settings from a worker's arguments: ``prefetch`` None means as many as
        ``concurrency``, ``worker_id`` None a fresh :func:`default_worker_id`."""
        if prefetch is None:
            prefetch = concurrency
        return cls(
            concurrency=concurrency,
            worker_id=default_worker_id() if worker_id is None else worker_id,
            lease_ms=lease_ms,
            time_limit_ms=time_limit_ms,
            grace_s=grace_s,
            max_idle_s=max_idle_s,
            prefetch=prefetch,
        )


# -- how a run ends -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Succeeded:
    """The handler returned, and its result is encoded already (sent as it is)."""

    result: Encoded


@dataclass(frozen=True, slots=True)
class Errored:
    """The handler raised, or its result could not be encoded: the attempt fails with
    ``error``; ``retryable`` says whether the job's retry policy applies."""

    error: str
    retryable: bool


@dataclass(frozen=True, slots=True)
class Interrupted:
    """The run was cancelled (an asyncio task cancelled) before it returned."""


RunOutcome = Succeeded | Errored | Interrupted
"""How one run of a handler ended."""


def describe_error(error: BaseException) -> str:
    """``"Type: text"`` for an error. Never raises: an error whose ``str()`` raises is named
    with a fallback instead (describing an error must never kill anything)."""
    name = type(error).__name__
    try:
        text = str(error)
    except Exception as exc:  # a broken __str__ is the handler's bug, not ours
        return f"<{name}, str() raised {type(exc).__name__}>"
    return f"{name}: {text}" if text else name


def error_outcome(error: BaseException) -> Errored:
    """The failure a handler's exception makes: retryable unless it is :class:`NonRetryable`."""
    return Errored(describe_error(error), not isinstance(error, NonRetryable))


def _kind_of(value: Any) -> str:
    name = type(value).__name__
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"


def result_outcome(result: Any, encode: Callable[[Any], bytes]) -> Succeeded | Errored:
    """Encode a handler's result now, in the runner: a result that cannot be encoded fails
    its own job (non-retryable: the same code returns the same kind of value again), with a
    text naming the error and the type, and never the acknowledgement of its neighbours."""
    try:
        return Succeeded(Encoded(encode(result)))
    except Exception as exc:
        # The codec raises its own error "from None": the original (TypeError, ...) is the
        # context, and names what went wrong best.
        cause = exc.__cause__ or exc.__context__ or exc
        return Errored(
            f"result could not be encoded: {describe_error(cause)} ({_kind_of(result)})",
            retryable=False,
        )


def result_encoder(queue: Any) -> Callable[[Any], bytes]:
    """How a worker of ``queue`` encodes a result: the queue's own codec and size limit (a
    sharded queue's shards share theirs)."""
    ops = getattr(queue, "ops", None)
    if ops is None:
        ops = queue.shards[0].ops
    return partial(ops.encode, what="result")


def payload_outcome(job: Job) -> Errored | None:
    """The failure of a job whose payload this client could not decode (None when it could):
    non-retryable, since every worker of this version would fail alike; the raw bytes stay in
    Redis for ``inspect``."""
    if job.payload_error is None:
        return None
    return Errored(f"payload could not be decoded: {job.payload_error}", retryable=False)
