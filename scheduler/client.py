"""The synchronous client for one queue.

Every method builds its call in the pure core (:mod:`scheduler._ops`) and sends it as one
EVALSHA; redis-py reloads a script after ``NOSCRIPT`` (a restart, a failover, ``SCRIPT FLUSH``).
Every call is safe to repeat after a lost reply: enqueue carries a job id, claim a claim id,
and complete, fail and heartbeat a lease token.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from redis.exceptions import OutOfMemoryError

from ._codec import DEFAULT_MAX_PAYLOAD_BYTES
from ._keys import QueueKeys
from ._models import (
    Claimed,
    Enqueued,
    Failed,
    Heartbeat,
    ItemStatus,
    JobInfo,
    JobOptions,
    JobSpec,
    QueueStats,
    Reaped,
    Retention,
)
from ._ops import (
    DEFAULT_MAINTENANCE,
    DEFAULT_MAX_CALL_BYTES,
    DEFAULT_REAP_LIMIT,
    MAX_CALL_BYTES,
    Batch,
    Call,
    LeaseRef,
    QueueOps,
)
from ._status import State
from ._validate import option_args
from .connection import SyncClient, connection_kwargs
from .errors import ConfigError, ServerFull, ValidationError

T = TypeVar("T")

DEFAULT_PREFIX = "scheduler"


MAX_PAYLOAD_BYTES_LIMIT = 512 * 1024 * 1024
"""The largest ``max_payload_bytes``: 512 MiB, the largest string Redis stores (its
``proto-max-bulk-len`` by default); a payload is stored as one hash value, so none can be
larger."""


def check_max_payload_bytes(value: object) -> int:
    """``value`` if it is an int (not a bool) in 1..:data:`MAX_PAYLOAD_BYTES_LIMIT`, else a
    ConfigError."""
    allowed = f"1..{MAX_PAYLOAD_BYTES_LIMIT} (512 MiB, the largest string Redis stores)"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"max_payload_bytes must be an int in {allowed}, not {value!r:.60}")
    if not 1 <= value <= MAX_PAYLOAD_BYTES_LIMIT:
        raise ConfigError(f"max_payload_bytes must be an int in {allowed}, not {value}")
    return value


def check_max_call_bytes(value: object) -> int:
    """``value`` if it is an int (not a bool) in 1..:data:`MAX_CALL_BYTES`, else a
    ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CALL_BYTES:
        allowed = f"1..{MAX_CALL_BYTES}"
        raise ConfigError(f"max_call_bytes must be an int in {allowed}, not {value!r:.60}")
    return value


def check_defaults(defaults: object) -> JobOptions:
    """``defaults`` (None: the default JobOptions) if every option is in its range, else a
    ConfigError naming the option."""
    if defaults is None:
        return JobOptions()
    if not isinstance(defaults, JobOptions):
        raise ConfigError(f"defaults must be a JobOptions, not {defaults!r:.60}")
    try:
        option_args(defaults)
    except ValidationError as exc:
        raise ConfigError(f"defaults: {exc}") from exc
    return defaults


def check_retention(retention: object) -> Retention:
    """``retention`` (None: the default Retention), which checked its own fields when made."""
    if retention is None:
        return Retention()
    if not isinstance(retention, Retention):
        raise ConfigError(f"retention must be a Retention, not {retention!r:.60}")
    return retention


def build_ops(
    name: str,
    prefix: str,
    defaults: JobOptions | None,
    retention: Retention | None,
    max_payload_bytes: int,
    max_call_bytes: int = DEFAULT_MAX_CALL_BYTES,
) -> QueueOps:
    """The pure core for one queue, with its settings checked: the one place every queue class
    (sync, asyncio, sharded) checks them, so a bad one is a ConfigError where the queue is made,
    never an error at the first call. Nothing is sent to Redis."""
    return QueueOps(
        QueueKeys(prefix, name),  # ConfigError for a bad prefix or name
        defaults=check_defaults(defaults),
        retention=check_retention(retention),
        max_payload_bytes=check_max_payload_bytes(max_payload_bytes),
        max_call_bytes=check_max_call_bytes(max_call_bytes),
    )


def check_client(client: Any) -> None:
    """Refuse a Redis client that decodes replies: payloads are bytes. A single Redis or a
    Redis Cluster client (sync or asyncio) alike."""
    if connection_kwargs(client).get("decode_responses"):
        raise ConfigError("the Redis client must have decode_responses=False (payloads are bytes)")


def server_full(exc: OutOfMemoryError, queue: str) -> ServerFull:
    """Redis's refusal at maxmemory, as our own error (see :class:`ServerFull`)."""
    return ServerFull(f"Redis is out of memory and refused the call: {exc}", queue=queue)


def register_scripts(client: Any, ops: QueueOps) -> dict[str, Any]:
    """Every script of ``ops``'s build registered on ``client`` (sync or asyncio): each call
    sends EVALSHA and reloads the script after ``NOSCRIPT``."""
    return {name: client.register_script(src.text) for name, src in ops.scripts.items()}


class Queue:
    """One queue on one Redis, used synchronously.

    Args:
        client: a ``redis.Redis`` or a ``redis.cluster.RedisCluster`` (``decode_responses``
            must stay False; see :func:`scheduler.connection.connect`). On a cluster the queue
            lives in one slot, on the primary that owns it.
        name: the queue's name: 1-64 letters, digits, ``_``, ``.``, ``-``.
        prefix: the first part of every key (``<prefix>:{<name>}:<part>``).
        defaults: options for jobs enqueued without their own (each in its documented range).
        retention: count limits on finished records.
        max_payload_bytes: size cap for one encoded payload or result, 1 byte to 512 MiB.
        max_call_bytes: byte budget of one script call (payloads enqueued, results completed,
            payloads one claim returns), 1 byte to 1 GiB: a larger batch goes in several
            calls, so no call holds Redis, single-threaded, for long (default 4 MiB).

    Raises:
        ConfigError: a setting above is invalid (checked here; nothing is sent to Redis).
    """

    def __init__(
        self,
        client: SyncClient,
        name: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        defaults: JobOptions | None = None,
        retention: Retention | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        max_call_bytes: int = DEFAULT_MAX_CALL_BYTES,
    ) -> None:
        check_client(client)
        self.ops = build_ops(name, prefix, defaults, retention, max_payload_bytes, max_call_bytes)
        self.name = name
        self.client = client
        self._scripts = register_scripts(client, self.ops)

    def _run(self, call: Call[T]) -> T:
        try:
            reply = self._scripts[call.script](keys=call.keys, args=call.args)
        except OutOfMemoryError as exc:
            raise server_full(exc, self.name) from exc
        return call.parse(reply)

    def _run_batch(self, batch: Batch[T]) -> list[T]:
        answers: list[T] = []
        for call in batch.calls:
            part: list[T] = self._run(call)
            answers.extend(part)
        return answers

    def enqueue(
        self, payload: Any, *, id: str | None = None, options: JobOptions | None = None
    ) -> Enqueued:
        """Enqueue one job. With an ``id`` that exists already, nothing changes and the answer
        says ``created=False`` (so a retried call never makes a second job)."""
        return self._run(self.ops.enqueue(payload, id=id, options=options))

    def enqueue_many(self, specs: Sequence[JobSpec]) -> list[Enqueued]:
        """Enqueue up to 1000 jobs in one atomic call."""
        return self._run_batch(self.ops.enqueue_many(specs))

    def claim(
        self,
        worker_id: str,
        *,
        count: int = 1,
        claim_id: str | None = None,
        lease_ms: int | None = None,
        maintenance: int = DEFAULT_MAINTENANCE,
    ) -> Claimed:
        """Lease up to ``count`` waiting jobs to ``worker_id``. Pass your own ``claim_id`` to
        repeat a claim safely: a repeat returns the same leases and leases nothing new."""
        return self._run(
            self.ops.claim(
                worker_id,
                count=count,
                claim_id=claim_id,
                lease_ms=lease_ms,
                maintenance=maintenance,
            )
        )

    def complete(self, lease: LeaseRef, result: Any = None) -> bool:
        """Complete a leased job, keeping ``result``. True when accepted now, False when this
        lease had completed it already. Raises :class:`LeaseLost` if the lease is not current."""
        return self._run(self.ops.complete(lease, result))

    def complete_many(self, items: Sequence[tuple[LeaseRef, Any]]) -> list[ItemStatus]:
        """Complete many leased jobs, each ``(lease, result)``; a status per item, no raise."""
        return self._run_batch(self.ops.complete_many(items))

    def fail(
        self, lease: LeaseRef, error: str, *, retryable: bool = True, delay_ms: int | None = None
    ) -> Failed:
        """Fail a leased job's attempt; see :meth:`QueueOps.fail`."""
        return self._run(self.ops.fail(lease, error, retryable=retryable, delay_ms=delay_ms))

    def heartbeat(
        self,
        leases: Sequence[LeaseRef],
        *,
        lease_ms: int | None = None,
        started: Mapping[str, int] | None = None,
    ) -> Heartbeat:
        """Extend many leases in one call; the answer lists the ids whose lease is lost.
        ``started`` maps the token of each lease whose handler began to how many ms ago."""
        return self._run(self.ops.heartbeat(leases, lease_ms=lease_ms, started=started))

    def release(
        self, leases: Sequence[LeaseRef], *, started: Mapping[str, int] | None = None
    ) -> list[ItemStatus]:
        """Hand back leases this worker will not finish (say, on shutdown): each job waits
        again at the front of its priority. ``started`` maps the token of each lease whose
        handler began to how many ms ago: those keep their attempt counted (dead on the last
        one); the others get it back. A status per item."""
        return self._run(self.ops.release(leases, started=started))

    def reap(self, *, limit: int = DEFAULT_REAP_LIMIT) -> Reaped:
        """Promote due delayed jobs, expire leases and trim old records, bounded by ``limit``."""
        return self._run(self.ops.reap(limit=limit))

    def cancel(self, job_id: str) -> bool:
        """Cancel a waiting or delayed job (False if it was cancelled already)."""
        return self._run(self.ops.cancel(job_id))

    def requeue(
        self, ids: Sequence[str] = (), *, limit: int = 100, request_id: str | None = None
    ) -> list[ItemStatus]:
        """Move dead jobs back to waiting with fresh attempts: ``ids``, or the ``limit``
        soonest to expire. A repeat with the same ``request_id`` (made for you if you give
        none) answers as the first call did and changes nothing."""
        return self._run(self.ops.requeue(ids, limit=limit, request_id=request_id))

    def purge(
        self,
        state: State | str,
        ids: Sequence[str] = (),
        *,
        limit: int = 100,
        request_id: str | None = None,
    ) -> list[ItemStatus]:
        """Delete finished jobs of ``state`` for good: ``ids``, or the ``limit`` soonest to
        expire; safe to repeat with the same ``request_id``, as :meth:`requeue`."""
        return self._run(
            self.ops.purge(state, ids, limit=limit, request_id=request_id)
        )

    def purge_quarantine(
        self, ids: Sequence[str] = (), *, limit: int = 100, request_id: str | None = None
    ) -> list[ItemStatus]:
        """Delete corrupt records set aside in the quarantine for good: ``ids``, or the
        ``limit`` oldest; safe to repeat with the same ``request_id``."""
        return self._run(
            self.ops.purge_quarantine(ids, limit=limit, request_id=request_id)
        )

    def inspect(self, job_id: str) -> JobInfo:
        """Everything known about one job. Raises :class:`JobNotFound`."""
        return self._run(self.ops.inspect(job_id))

    def stats(self, *, active_limit: int = 100) -> QueueStats:
        """Counts per state, the oldest waiting job and the active jobs with their workers."""
        return self._run(self.ops.stats(active_limit=active_limit))
