"""The asyncio client for one queue: the same surface as :class:`scheduler.Queue`, awaiting.

A thin shell over the same pure core (:mod:`scheduler._ops`): each method builds its call there
and awaits one EVALSHA. ``tests/unit/test_client_parity.py`` checks that the two clients'
public methods have the same signatures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from redis.exceptions import OutOfMemoryError

from ._codec import DEFAULT_MAX_PAYLOAD_BYTES
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
    Batch,
    Call,
    LeaseRef,
)
from ._status import State
from .client import DEFAULT_PREFIX, build_ops, check_client, register_scripts, server_full
from .connection import AsyncClient

T = TypeVar("T")


class AsyncQueue:
    """One queue on one Redis, used from asyncio. Arguments as for :class:`scheduler.Queue`,
    with a ``redis.asyncio.Redis`` or ``redis.asyncio.cluster.RedisCluster`` client."""

    def __init__(
        self,
        client: AsyncClient,
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

    async def _run(self, call: Call[T]) -> T:
        try:
            reply = await self._scripts[call.script](keys=call.keys, args=call.args)
        except OutOfMemoryError as exc:
            raise server_full(exc, self.name) from exc
        return call.parse(reply)

    async def _run_batch(self, batch: Batch[T]) -> list[T]:
        answers: list[T] = []
        for call in batch.calls:
            part: list[T] = await self._run(call)
            answers.extend(part)
        return answers

    async def enqueue(
        self, payload: Any, *, id: str | None = None, options: JobOptions | None = None
    ) -> Enqueued:
        """Enqueue one job; see :meth:`scheduler.Queue.enqueue`."""
        return await self._run(self.ops.enqueue(payload, id=id, options=options))

    async def enqueue_many(self, specs: Sequence[JobSpec]) -> list[Enqueued]:
        """Enqueue up to 1000 jobs in one atomic call."""
        return await self._run_batch(self.ops.enqueue_many(specs))

    async def claim(
        self,
        worker_id: str,
        *,
        count: int = 1,
        claim_id: str | None = None,
        lease_ms: int | None = None,
        maintenance: int = DEFAULT_MAINTENANCE,
    ) -> Claimed:
        """Lease up to ``count`` waiting jobs; see :meth:`scheduler.Queue.claim`."""
        return await self._run(
            self.ops.claim(
                worker_id,
                count=count,
                claim_id=claim_id,
                lease_ms=lease_ms,
                maintenance=maintenance,
            )
        )

    async def complete(self, lease: LeaseRef, result: Any = None) -> bool:
        """Complete a leased job; see :meth:`scheduler.Queue.complete`."""
        return await self._run(self.ops.complete(lease, result))

    async def complete_many(self, items: Sequence[tuple[LeaseRef, Any]]) -> list[ItemStatus]:
        """Complete many leased jobs, each ``(lease, result)``; a status per item."""
        return await self._run_batch(self.ops.complete_many(items))

    async def fail(
        self, lease: LeaseRef, error: str, *, retryable: bool = True, delay_ms: int | None = None
    ) -> Failed:
        """Fail a leased job's attempt; see :meth:`scheduler.Queue.fail`."""
        return await self._run(self.ops.fail(lease, error, retryable=retryable, delay_ms=delay_ms))

    async def heartbeat(
        self,
        leases: Sequence[LeaseRef],
        *,
        lease_ms: int | None = None,
        started: Mapping[str, int] | None = None,
    ) -> Heartbeat:
        """Extend many leases in one call; the answer lists the ids whose lease is lost.
        ``started`` maps the token of each lease whose handler began to how many ms ago."""
        return await self._run(self.ops.heartbeat(leases, lease_ms=lease_ms, started=started))

    async def release(
        self, leases: Sequence[LeaseRef], *, started: Mapping[str, int] | None = None
    ) -> list[ItemStatus]:
        """Hand back leases this worker will not finish (say, on shutdown): each job waits
        again at the front of its priority. ``started`` maps the token of each lease whose
        handler began to how many ms ago: those keep their attempt counted (dead on the last
        one); the others get it back. A status per item."""
        return await self._run(self.ops.release(leases, started=started))

    async def reap(self, *, limit: int = DEFAULT_REAP_LIMIT) -> Reaped:
        """Promote due delayed jobs, expire leases and trim old records, bounded by ``limit``."""
        return await self._run(self.ops.reap(limit=limit))

    async def cancel(self, job_id: str) -> bool:
        """Cancel a waiting or delayed job (False if it was cancelled already)."""
        return await self._run(self.ops.cancel(job_id))

    async def requeue(
        self, ids: Sequence[str] = (), *, limit: int = 100, request_id: str | None = None
    ) -> list[ItemStatus]:
        """Move dead jobs back to waiting with fresh attempts: ``ids``, or the ``limit``
        soonest to expire. A repeat with the same ``request_id`` (made for you if you give
        none) answers as the first call did and changes nothing."""
        return await self._run(self.ops.requeue(ids, limit=limit, request_id=request_id))

    async def purge(
        self,
        state: State | str,
        ids: Sequence[str] = (),
        *,
        limit: int = 100,
        request_id: str | None = None,
    ) -> list[ItemStatus]:
        """Delete finished jobs of ``state`` for good: ``ids``, or the ``limit`` soonest to
        expire; safe to repeat with the same ``request_id``, as :meth:`requeue`."""
        return await self._run(
            self.ops.purge(state, ids, limit=limit, request_id=request_id)
        )

    async def purge_quarantine(
        self, ids: Sequence[str] = (), *, limit: int = 100, request_id: str | None = None
    ) -> list[ItemStatus]:
        """Delete corrupt records set aside in the quarantine for good: ``ids``, or the
        ``limit`` oldest; safe to repeat with the same ``request_id``."""
        return await self._run(
            self.ops.purge_quarantine(ids, limit=limit, request_id=request_id)
        )

    async def inspect(self, job_id: str) -> JobInfo:
        """Everything known about one job. Raises :class:`JobNotFound`."""
        return await self._run(self.ops.inspect(job_id))

    async def stats(self, *, active_limit: int = 100) -> QueueStats:
        """Counts per state, the oldest waiting job and the active jobs with their workers."""
        return await self._run(self.ops.stats(active_limit=active_limit))
