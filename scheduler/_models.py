"""The values the client takes and returns. All frozen; times are Unix milliseconds on the
Redis server's clock, durations are milliseconds (the names say ``_ms``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._status import Outcome, State, Status, Unreadable
from .errors import ConfigError

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class JobOptions:
    """How one job is run. Every field has a default; pass only what differs.

    Attributes:
        priority: -1000..1000; higher runs first, FIFO within a priority.
        delay_ms: run no earlier than this long after enqueue (server clock).
        run_at_ms: run no earlier than this Unix time in ms (server clock); overrides delay_ms.
        max_attempts: leases allowed in all (1..1000); an expired lease counts as one.
        lease_ms: how long a worker holds the job per claim before it may be given to another,
            unless the worker heartbeats.
        backoff_ms: the first retry's delay; it doubles with each attempt ...
        backoff_max_ms: ... up to this cap.
        jitter: the share of each retry delay drawn at random, 0.0..1.0.
        keep_result_ms: how long a completed job and its result are kept (and its id deduplicated).
        keep_dead_ms: how long a dead or cancelled job is kept.
    """

    priority: int = 0
    delay_ms: int = 0
    run_at_ms: int | None = None
    max_attempts: int = 3
    lease_ms: int = 30_000
    backoff_ms: int = 1_000
    backoff_max_ms: int = 3_600_000
    jitter: float = 0.5
    keep_result_ms: int = DAY_MS
    keep_dead_ms: int = 7 * DAY_MS


@dataclass(frozen=True, slots=True)
class Retention:
    """Count limits on finished records, applied in bounded steps by the scripts that add them,
    and the repeat window.

    Age limits are per job (:attr:`JobOptions.keep_result_ms`, :attr:`JobOptions.keep_dead_ms`).

    Attributes:
        max_completed: completed records kept (with their payloads and results); past it the
            ones soonest to expire are trimmed.
        max_dead: dead records kept.
        max_cancelled: cancelled records kept.
        trim_batch: the most records one call trims, of each kind.
        repeat_window_ms: how long a repeated call is sure to get the first call's answer,
            whatever the count limits: count trimming keeps a stub of each finished job this
            long (its id, token and outcome; about 100 bytes of Redis memory), so a repeated
            enqueue, complete, fail or cancel still finds it; and claims, requeues and purges
            are remembered by their request id this long. A job's own shorter
            ``keep_result_ms`` / ``keep_dead_ms`` is honoured and gives that window up.
            Memory: about ``finish rate x window x 100`` bytes while the count limits trim.
    """

    max_completed: int = 100_000
    max_dead: int = 100_000
    max_cancelled: int = 100_000
    trim_batch: int = 100
    repeat_window_ms: int = 60_000

    def __post_init__(self) -> None:
        """Refuse a field that is not an int (a bool included) in its range: ``max_completed``,
        ``max_dead`` and ``max_cancelled`` 0..10**9, ``trim_batch`` 0..1000 (the scripts'
        batch limit), ``repeat_window_ms`` 1 ms..a century, so a bad Retention fails where it
        is made, not at the first call."""
        limits = (("max_completed", 0, 10**9), ("max_dead", 0, 10**9), ("max_cancelled", 0, 10**9))
        window = ("repeat_window_ms", 1, 100 * 365 * 24 * 3600 * 1000)
        for name, low, high in (*limits, ("trim_batch", 0, 1000), window):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(
                    f"Retention.{name} must be an int in {low}..{high}, not {value!r:.60}"
                )


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One job for :meth:`Queue.enqueue_many`: a payload, an optional id and options."""

    payload: Any
    id: str | None = None
    options: JobOptions | None = None


@dataclass(frozen=True, slots=True)
class Enqueued:
    """The answer to enqueueing one job.

    ``created`` is False when a job with that id existed already (the call changed nothing);
    ``state`` is the job's state after the call (None when an existing job's record is one this
    version cannot read, see :class:`~scheduler.errors.RecordUnreadable`).
    """

    id: str
    created: bool
    state: State | None


@dataclass(frozen=True, slots=True)
class Job:
    """A leased job, as a worker receives it.

    ``token`` fences every later call about this lease; it is also a good idempotency key for the
    job's own side effects. ``deadline_ms`` is when the lease runs out (server clock) unless a
    heartbeat extends it.

    ``payload_error`` says why the stored payload could not be decoded (not msgpack, an ext
    type, a map key that is not a string, over this client's ``max_payload_bytes``); the
    payload is then None. A worker fails such a job at once, non-retryable, and runs the rest
    of its batch: one bad payload never costs its neighbours anything.
    """

    queue: str
    id: str
    payload: Any
    attempt: int
    token: str
    deadline_ms: int
    payload_error: str | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    """The answer to a claim: the jobs leased, and whether this repeated an earlier claim id.

    When nothing was claimable, ``next_ms`` is the earliest server time at which a job may
    become claimable without a new enqueue (a delayed job's run-at time, or a lease deadline),
    or None when no such time is known: an idle worker can wait for the wake signal until then.
    """

    jobs: list[Job]
    now_ms: int
    repeated: bool = False
    next_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """The answer to fail(): ``outcome`` is ``retry`` or ``dead``; ``run_at_ms`` is when a
    retried job runs again (0 when dead). ``repeated`` is True when this token had failed the
    job already: the first outcome is returned and nothing changed."""

    outcome: Outcome
    run_at_ms: int
    repeated: bool = False


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The answer to a heartbeat: the ids whose lease is lost (stop them), and the new deadline
    of each job in the order given (0 for a lost one)."""

    lost: list[str]
    deadlines_ms: list[int]
    now_ms: int


@dataclass(frozen=True, slots=True)
class Reaped:
    """What one reap call did: jobs promoted from delayed, leases expired back to waiting,
    jobs dead-lettered by expiry, finished records trimmed."""

    promoted: int
    requeued: int
    dead: int
    trimmed: int


@dataclass(frozen=True, slots=True)
class ItemStatus:
    """The status of one item of a batch call (requeue, purge, complete)."""

    id: str
    status: Status


@dataclass(frozen=True, slots=True)
class JobInfo:
    """Everything known about one job (:meth:`Queue.inspect`).

    ``leased_ms`` is when the latest lease was handed out; ``started_ms`` when that lease's
    handler began, as its worker reported it (0: not begun, or not reported yet; a job that
    finished before its worker's first heartbeat has none). ``stub`` is True when count trimming
    kept only a stub of a finished job (state, attempts, token, outcome and times: its options,
    payload, result and error are gone). A payload or result that cannot be decoded is None,
    with the reason in ``payload_error`` / ``result_error`` and the stored bytes in
    ``raw_payload`` / ``raw_result``.
    """

    queue: str
    id: str
    state: State
    attempt: int
    max_attempts: int
    priority: int
    token: str
    outcome: Outcome
    worker: str
    deadline_ms: int
    created_ms: int
    ready_ms: int
    leased_ms: int
    started_ms: int
    finished_ms: int
    options: JobOptions
    payload: Any
    result: Any
    error: str | None
    now_ms: int
    payload_bytes: int = -1
    stub: bool = False
    payload_error: str | None = None
    result_error: str | None = None
    raw_payload: bytes | None = None
    raw_result: bytes | None = None


@dataclass(frozen=True, slots=True)
class ActiveJob:
    """One leased job in :class:`QueueStats`: who holds it and until when, when it was leased,
    and when its handler began (``started_ms`` 0: a prefetched job, or one whose start its
    worker has not reported yet)."""

    id: str
    worker: str
    attempt: int
    deadline_ms: int
    leased_ms: int
    started_ms: int

    @property
    def is_running(self) -> bool:
        """True once its handler began (as reported); False while it waits in a worker."""
        return self.started_ms > 0


@dataclass(frozen=True, slots=True)
class QueueStats:
    """A snapshot of a queue (:meth:`Queue.stats`), the monitor's view.

    ``counts`` has every state. Of the active jobs, ``running`` have a handler that began (as
    their workers reported); the others are leased and wait in a worker (prefetched). ``stubs``
    are finished jobs count trimming keeps as stubs for the repeat window; ``quarantined`` are
    corrupt records set aside (``scheduler quarantine list``); ``unreadable`` are records of a
    newer version of this package met in the last 10 minutes, left untouched for it.
    """

    queue: str
    now_ms: int
    counts: dict[State, int]
    oldest_waiting_ms: int | None
    active: list[ActiveJob] = field(default_factory=list)
    running: int = 0
    stubs: int = 0
    quarantined: int = 0
    unreadable: int = 0

    @property
    def oldest_waiting_age_ms(self) -> int | None:
        """How long the longest-waiting ready job has waited, or None if none waits."""
        if self.oldest_waiting_ms is None:
            return None
        return max(0, self.now_ms - self.oldest_waiting_ms)


@dataclass(frozen=True, slots=True)
class UnreadableRecord:
    """What is stored for a job whose record this version cannot read (see
    :class:`~scheduler.errors.RecordUnreadable`): why (``newer`` or ``corrupt``), the raw record
    and payload, the note kept with it, and when it was quarantined (None: it was not, as a
    newer record never is)."""

    queue: str
    id: str
    reason: Unreadable
    record: bytes
    payload: bytes | None
    note: str | None
    quarantined_ms: int | None
    now_ms: int
