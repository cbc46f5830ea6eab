"""One logical queue split over ``n`` shards, each a full queue in a slot of its own.

Shard ``i`` of queue ``orders`` is the queue ``orders:i``, whose keys are
``<prefix>:{orders:i}:<part>``: on Redis Cluster the shards spread over the primaries, so one
logical queue scales past one node. :class:`ShardedQueue` (and :class:`AsyncShardedQueue` for
asyncio) hold one :class:`~scheduler.Queue` per shard and offer the calls a worker and a producer
need; a :class:`~scheduler.worker.Worker` (or ``AsyncWorker``) given a sharded queue serves all
its shards.

* **Enqueue** goes to one shard: by ``key`` when given (the same key always picks the same
  shard, so jobs of one key stay in order there), else by the job id when given (so a repeated
  enqueue finds the first), else round robin.
* **Claim** visits the shards round robin, starting one further at every new claim id, and takes
  from each shard in turn until ``count`` jobs are leased: every shard comes first once in ``n``
  claims, so none starves. Each shard's claim has its own claim id (``<claim id>.<i>``) and the
  start shard is kept for a repeated claim id, so repeating a claim is safe as before.
* **Complete, fail, heartbeat, release** go to each job's own shard (by ``Job.queue``; a
  ``(job id, token)`` tuple does not say its shard, so these take the :class:`Job`).
* **Stats and reap** add up over the shards; ``inspect``, ``cancel``, ``requeue`` and ``purge``
  look for an id on every shard.

**What is atomic.** Everything about one job is, as on a plain queue: its enqueue, claim,
completion, failure and lease are one script on its shard. Calls that span shards are not:
``enqueue_many`` is atomic per shard (a batch split over shards can be half-applied if the call
fails midway; repeat it with the same ids), a claim that takes from several shards makes one
script call per shard, and ``stats`` reads the shards one after the other (its sum is not one
instant). Order holds only within one shard (use ``key`` for jobs that must stay in order), and
priorities are compared only within a shard.
"""

from __future__ import annotations

import hashlib
import threading
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import redis.asyncio

from ._codec import DEFAULT_MAX_PAYLOAD_BYTES
from ._keys import validate_queue_name
from ._models import (
    Claimed,
    Enqueued,
    Failed,
    Heartbeat,
    ItemStatus,
    Job,
    JobInfo,
    JobOptions,
    JobSpec,
    QueueStats,
    Reaped,
    Retention,
)
from ._ops import DEFAULT_MAINTENANCE, DEFAULT_REAP_LIMIT, new_id
from ._status import State, Status
from ._validate import check_id
from .aio import AsyncQueue
from .client import DEFAULT_PREFIX, Queue
from .errors import ConfigError, JobNotFound, ValidationError

__all__ = ["MAX_SHARDS", "AsyncShardedQueue", "ShardRouter", "ShardedQueue", "shard_name"]

T = TypeVar("T")
MAX_SHARDS = 1024


def shard_name(queue: str, index: int) -> str:
    """The name of shard ``index`` of ``queue``: ``<queue>:<index>``."""
    return f"{queue}:{index}"


def sub_id(request_id: str, index: int) -> str:
    """The id of shard ``index``'s part of a claim, requeue or purge: ``<id>.<index>``, with
    a long id shortened to its SHA-1 so the result stays within the 128 characters of an id."""
    if len(request_id) > 120:
        request_id = hashlib.sha1(request_id.encode()).hexdigest()
    return f"{request_id}.{index}"


class ShardRouter:
    """The pure part shared by both sharded clients: which shard a call goes to, and how the
    shards' replies add up. No I/O."""

    def __init__(self, name: str, shards: int) -> None:
        validate_queue_name(name)  # before it is made into shard names, which hide a non-str
        if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= MAX_SHARDS:
            raise ConfigError(f"shards must be an int from 1 to {MAX_SHARDS}, not {shards!r}")
        self.name = name
        self.count = shards
        self.names = [shard_name(name, i) for i in range(shards)]
        self._index = {n: i for i, n in enumerate(self.names)}
        self._lock = threading.Lock()
        self._next_enqueue = 0
        self._next_claim = 0
        self._last_claim: tuple[str, int] | None = None

    # -- where calls go ------------------------------------------------------------------------

    def hashed(self, text: str) -> int:
        """The shard a key or an id maps to (CRC-32, stable across processes)."""
        return zlib.crc32(text.encode("utf-8")) % self.count

    def for_enqueue(self, job_id: str | None, key: str | None) -> int:
        """The shard of one new job: by ``key``, else by ``job_id``, else round robin."""
        if key is not None:
            if not isinstance(key, str) or not key:
                raise ValidationError("a shard key is a non-empty string")
            return self.hashed(key)
        if job_id is not None:
            return self.hashed(check_id(job_id))
        with self._lock:
            index = self._next_enqueue
            self._next_enqueue = (index + 1) % self.count
        return index

    def claim_plan(self, claim_id: str) -> list[tuple[int, str]]:
        """The shards a claim visits, in order, each with its own claim id. A new claim id
        starts one shard further than the last; a repeated one starts where it did."""
        with self._lock:
            if self._last_claim is not None and self._last_claim[0] == claim_id:
                start = self._last_claim[1]
            else:
                start = self._next_claim
                self._next_claim = (start + 1) % self.count
                self._last_claim = (claim_id, start)
        order = [(start + step) % self.count for step in range(self.count)]
        return [(i, sub_id(claim_id, i)) for i in order]

    def request_plan(self, request_id: str | None) -> list[str]:
        """The request id of each shard's part of one requeue or purge (``<id>.<i>``), so a
        repeat of the whole call repeats each part."""
        base = new_id() if request_id is None else check_id(request_id, "request id")
        return [sub_id(base, i) for i in range(self.count)]

    def shard_of(self, ref: Job | tuple[str, str]) -> int:
        """The shard a lease belongs to (from ``Job.queue``)."""
        if not isinstance(ref, Job):
            raise ValidationError("a sharded queue needs the Job a claim returned, not a tuple")
        index = self._index.get(ref.queue)
        if index is None:
            raise ValidationError(f"job {ref.id} is from queue {ref.queue!r}, not a shard here")
        return index

    def group(self, refs: Sequence[T], lease_of: Any) -> dict[int, list[tuple[int, T]]]:
        """Items by shard, each with its position in ``refs``."""
        groups: dict[int, list[tuple[int, T]]] = {}
        for position, item in enumerate(refs):
            groups.setdefault(self.shard_of(lease_of(item)), []).append((position, item))
        return groups

    def search_order(self, job_id: str) -> list[int]:
        """The shards to look for a job id on: its hashed shard first, then the others."""
        first = self.hashed(job_id)
        return [first] + [i for i in range(self.count) if i != first]

    # -- how replies add up --------------------------------------------------------------------

    @staticmethod
    def merge_claims(parts: list[Claimed]) -> Claimed:
        """One claim answer from the shards' answers (the first shard's clock)."""
        jobs = [job for part in parts for job in part.jobs]
        nexts = [p.next_ms for p in parts if p.next_ms is not None]
        return Claimed(
            jobs=jobs,
            now_ms=parts[0].now_ms,
            repeated=all(p.repeated for p in parts),
            next_ms=None if jobs or not nexts else min(nexts),
        )

    def partition(
        self, specs: Sequence[JobSpec], key: str | None
    ) -> dict[int, list[tuple[int, JobSpec]]]:
        """The specs of an enqueue_many by shard, each with its position in the call."""
        parts: dict[int, list[tuple[int, JobSpec]]] = {}
        for position, spec in enumerate(specs):
            parts.setdefault(self.for_enqueue(spec.id, key), []).append((position, spec))
        return parts

    @staticmethod
    def scatter(size: int, parts: dict[int, list[tuple[int, Any]]], answers: dict[int, list[T]]
                ) -> list[T]:  # fmt: skip
        """Per-item answers put back in the callers' order."""
        out: list[Any] = [None] * size
        for index, items in parts.items():
            for (position, _), answer in zip(items, answers[index], strict=True):
                out[position] = answer
        return out

    @staticmethod
    def merge_heartbeats(size: int, parts: dict[int, list[tuple[int, Any]]],
                         beats: dict[int, Heartbeat]) -> Heartbeat:  # fmt: skip
        """One heartbeat answer from the shards' answers."""
        deadlines = ShardRouter.scatter(size, parts, {i: b.deadlines_ms for i, b in beats.items()})
        lost = [job_id for beat in beats.values() for job_id in beat.lost]
        now = min((b.now_ms for b in beats.values()), default=0)
        return Heartbeat(lost=lost, deadlines_ms=deadlines, now_ms=now)

    def merge_stats(self, parts: list[QueueStats], active_limit: int) -> QueueStats:
        """The sum of the shards' stats (counts added; the oldest waiting job of all)."""
        counts = {state: sum(p.counts.get(state, 0) for p in parts) for state in State}
        oldest = [p.oldest_waiting_ms for p in parts if p.oldest_waiting_ms is not None]
        active = [a for p in parts for a in p.active][:active_limit]
        return QueueStats(self.name, parts[0].now_ms, counts, min(oldest, default=None), active)

    @staticmethod
    def merge_reaped(parts: list[Reaped]) -> Reaped:
        """The sum of the shards' reap answers."""
        return Reaped(*(sum(getattr(p, f) for p in parts) for f in Reaped.__slots__))

    @staticmethod
    def merge_listed(ids: Sequence[str], parts: list[list[ItemStatus]]) -> list[ItemStatus]:
        """Per-id statuses from every shard: the status of the shard that had the id."""
        if not ids:
            return [item for part in parts for item in part]
        best: dict[str, ItemStatus] = {}
        for part in parts:
            for item in part:
                if item.status is not Status.NOT_FOUND or item.id not in best:
                    best[item.id] = item
        return [best.get(i, ItemStatus(i, Status.NOT_FOUND)) for i in ids]


def _first(item: tuple[Job, Any]) -> Job:
    return item[0]


def _same(item: Job) -> Job:
    return item


class _Shards:
    """The settings both sharded clients take, checked once."""

    shards: Sequence[Any]

    def __init__(self, name: str, shards: int) -> None:
        self.router = ShardRouter(name, shards)
        self.name = name

    @property
    def wake_keys(self) -> list[str]:
        """The wake LIST of every shard (what an idle worker waits on)."""
        return [q.ops.keys.key("wake") for q in self.shards]


class ShardedQueue(_Shards):
    """One logical queue over ``shards`` queues (see the module docstring).

    Args:
        client: a ``redis.Redis`` or ``redis.cluster.RedisCluster``.
        name: the logical queue's name; shard ``i`` is the queue ``<name>:<i>``.
        shards: how many shards (1-1024). Changing it later moves where keys and ids map:
            drain the queue first.
        Other arguments as for :class:`~scheduler.Queue`, applied to every shard.
    """

    def __init__(
        self,
        client: Any,
        name: str,
        shards: int,
        *,
        prefix: str = DEFAULT_PREFIX,
        defaults: JobOptions | None = None,
        retention: Retention | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        super().__init__(name, shards)
        self.client = client
        self.shards: list[Queue] = [
            Queue(client, n, prefix=prefix, defaults=defaults, retention=retention,
                  max_payload_bytes=max_payload_bytes)
            for n in self.router.names
        ]  # fmt: skip

    def enqueue(
        self,
        payload: Any,
        *,
        id: str | None = None,
        options: JobOptions | None = None,
        key: str | None = None,
    ) -> Enqueued:
        """Enqueue one job on one shard: by ``key``, else by ``id``, else round robin."""
        shard = self.shards[self.router.for_enqueue(id, key)]
        return shard.enqueue(payload, id=id, options=options)

    def enqueue_many(self, specs: Sequence[JobSpec], *, key: str | None = None) -> list[Enqueued]:
        """Enqueue jobs, each on its shard (all on ``key``'s shard when given); atomic per
        shard only. Answers in the order given."""
        parts = self.router.partition(specs, key)
        answers = {i: self.shards[i].enqueue_many([s for _, s in items])
                   for i, items in parts.items()}  # fmt: skip
        return ShardRouter.scatter(len(specs), parts, answers)

    def claim(
        self,
        worker_id: str,
        *,
        count: int = 1,
        claim_id: str | None = None,
        lease_ms: int | None = None,
        maintenance: int = DEFAULT_MAINTENANCE,
    ) -> Claimed:
        """Lease up to ``count`` jobs across the shards, round robin (see the module)."""
        parts: list[Claimed] = []
        for index, sub_id in self.router.claim_plan(claim_id or new_id()):
            left = count - sum(len(p.jobs) for p in parts)
            if left <= 0:
                break
            parts.append(self.shards[index].claim(
                worker_id, count=left, claim_id=sub_id, lease_ms=lease_ms, maintenance=maintenance
            ))  # fmt: skip
        return ShardRouter.merge_claims(parts)

    def complete(self, lease: Job, result: Any = None) -> bool:
        """Complete a leased job on its shard; see :meth:`scheduler.Queue.complete`."""
        return self.shards[self.router.shard_of(lease)].complete(lease, result)

    def complete_many(self, items: Sequence[tuple[Job, Any]]) -> list[ItemStatus]:
        """Complete many leased jobs, one call per shard; a status per item, in order."""
        parts = self.router.group(items, _first)
        answers = {i: self.shards[i].complete_many([it for _, it in g]) for i, g in parts.items()}
        return ShardRouter.scatter(len(items), parts, answers)

    def fail(
        self, lease: Job, error: str, *, retryable: bool = True, delay_ms: int | None = None
    ) -> Failed:
        """Fail a leased job's attempt on its shard; see :meth:`scheduler.Queue.fail`."""
        shard = self.shards[self.router.shard_of(lease)]
        return shard.fail(lease, error, retryable=retryable, delay_ms=delay_ms)

    def heartbeat(
        self,
        leases: Sequence[Job],
        *,
        lease_ms: int | None = None,
        started: Mapping[str, int] | None = None,
    ) -> Heartbeat:
        """Extend many leases, one call per shard; the answer lists the lost ids."""
        parts = self.router.group(leases, _same)
        beats = {i: self.shards[i].heartbeat([j for _, j in g], lease_ms=lease_ms, started=started)
                 for i, g in parts.items()}  # fmt: skip
        return ShardRouter.merge_heartbeats(len(leases), parts, beats)

    def release(
        self, leases: Sequence[Job], *, started: Mapping[str, int] | None = None
    ) -> list[ItemStatus]:
        """Hand back leases, one call per shard; a status per item, in order."""
        parts = self.router.group(leases, _same)
        answers = {i: self.shards[i].release([j for _, j in g], started=started)
                   for i, g in parts.items()}  # fmt: skip
        return ShardRouter.scatter(len(leases), parts, answers)

    def reap(self, *, limit: int = DEFAULT_REAP_LIMIT) -> Reaped:
        """Reap every shard (``limit`` per shard); the sums."""
        return ShardRouter.merge_reaped([s.reap(limit=limit) for s in self.shards])

    def _find(self, job_id: str, call: Any) -> Any:
        for index in self.router.search_order(check_id(job_id)):
            try:
                return call(self.shards[index])
            except JobNotFound:
                continue
        raise JobNotFound("no such job on any shard", queue=self.name, job_id=job_id)

    def cancel(self, job_id: str) -> bool:
        """Cancel a waiting or delayed job, on whichever shard holds it."""
        return bool(self._find(job_id, lambda shard: shard.cancel(job_id)))

    def inspect(self, job_id: str) -> JobInfo:
        """Everything known about one job, from whichever shard holds it."""
        info: JobInfo = self._find(job_id, lambda shard: shard.inspect(job_id))
        return info

    def requeue(
        self, ids: Sequence[str] = (), *, limit: int = 100, request_id: str | None = None
    ) -> list[ItemStatus]:
        """Dead jobs back to waiting on every shard: ``ids``, or the ``limit`` soonest to
        expire per shard; a repeat with the same ``request_id`` changes nothing."""
        plan = self.router.request_plan(request_id)
        parts = [s.requeue(ids, limit=limit, request_id=plan[i]) for i, s in enumerate(self.shards)]
        return ShardRouter.merge_listed(ids, parts)

    def purge(
        self,
        state: State | str,
        ids: Sequence[str] = (),
        *,
        limit: int = 100,
        request_id: str | None = None,
    ) -> list[ItemStatus]:
        """Delete finished jobs on every shard: ``ids``, or the ``limit`` soonest to expire per
        shard; a repeat with the same ``request_id`` changes nothing."""
        plan = self.router.request_plan(request_id)
        parts = [s.purge(state, ids, limit=limit, request_id=plan[i])
                 for i, s in enumerate(self.shards)]  # fmt: skip
        return ShardRouter.merge_listed(ids, parts)

    def stats(self, *, active_limit: int = 100) -> QueueStats:
        """The shards' stats added up (read one shard after the other)."""
        parts = [s.stats(active_limit=active_limit) for s in self.shards]
        return self.router.merge_stats(parts, active_limit)


class AsyncShardedQueue(_Shards):
    """:class:`ShardedQueue` for asyncio, on a ``redis.asyncio`` client (single or cluster)."""

    def __init__(
        self,
        client: redis.asyncio.Redis | Any,
        name: str,
        shards: int,
        *,
        prefix: str = DEFAULT_PREFIX,
        defaults: JobOptions | None = None,
        retention: Retention | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        super().__init__(name, shards)
        self.client = client
        self.shards: list[AsyncQueue] = [
            AsyncQueue(client, n, prefix=prefix, defaults=defaults, retention=retention,
                       max_payload_bytes=max_payload_bytes)
            for n in self.router.names
        ]  # fmt: skip

    async def enqueue(
        self,
        payload: Any,
        *,
        id: str | None = None,
        options: JobOptions | None = None,
        key: str | None = None,
    ) -> Enqueued:
        """Enqueue one job on one shard; see :meth:`ShardedQueue.enqueue`."""
        shard = self.shards[self.router.for_enqueue(id, key)]
        return await shard.enqueue(payload, id=id, options=options)

    async def enqueue_many(
        self, specs: Sequence[JobSpec], *, key: str | None = None
    ) -> list[Enqueued]:
        """Enqueue jobs, each on its shard; see :meth:`ShardedQueue.enqueue_many`."""
        parts = self.router.partition(specs, key)
        answers = {i: await self.shards[i].enqueue_many([s for _, s in items])
                   for i, items in parts.items()}  # fmt: skip
        return ShardRouter.scatter(len(specs), parts, answers)

    async def claim(
        self,
        worker_id: str,
        *,
        count: int = 1,
        claim_id: str | None = None,
        lease_ms: int | None = None,
        maintenance: int = DEFAULT_MAINTENANCE,
    ) -> Claimed:
        """Lease up to ``count`` jobs across the shards; see :meth:`ShardedQueue.claim`."""
        parts: list[Claimed] = []
        for index, sub_id in self.router.claim_plan(claim_id or new_id()):
            left = count - sum(len(p.jobs) for p in parts)
            if left <= 0:
                break
            parts.append(await self.shards[index].claim(
                worker_id, count=left, claim_id=sub_id, lease_ms=lease_ms, maintenance=maintenance
            ))  # fmt: skip
        return ShardRouter.merge_claims(parts)

    async def complete(self, lease: Job, result: Any = None) -> bool:
        """Complete a leased job on its shard."""
        return await self.shards[self.router.shard_of(lease)].complete(lease, result)

    async def complete_many(self, items: Sequence[tuple[Job, Any]]) -> list[ItemStatus]:
        """Complete many leased jobs, one call per shard; a status per item, in order."""
        parts = self.router.group(items, _first)
        answers = {i: await self.shards[i].complete_many([it for _, it in g])
                   for i, g in parts.items()}  # fmt: skip
        return ShardRouter.scatter(len(items), parts, answers)

    async def fail(
        self, lease: Job, error: str, *, retryable: bool = True, delay_ms: int | None = None
    ) -> Failed:
        """Fail a leased job's attempt on its shard."""
        shard = self.shards[self.router.shard_of(lease)]
        return await shard.fail(lease, error, retryable=retryable, delay_ms=delay_ms)

    async def heartbeat(
        self,
        leases: Sequence[Job],
        *,
        lease_ms: int | None = None,
        started: Mapping[str, int] | None = None,
    ) -> Heartbeat:
        """Extend many leases, one call per shard."""
        parts = self.router.group(leases, _same)
        beats = {i: await self.shards[i].heartbeat([j for _, j in g], lease_ms=lease_ms,
                                                   started=started)
                 for i, g in parts.items()}  # fmt: skip
        return ShardRouter.merge_heartbeats(len(leases), parts, beats)

    async def release(
        self, leases: Sequence[Job], *, started: Mapping[str, int] | None = None
    ) -> list[ItemStatus]:
        """Hand back leases, one call per shard."""
        parts = self.router.group(leases, _same)
        answers = {i: await self.shards[i].release([j for _, j in g], started=started)
                   for i, g in parts.items()}  # fmt: skip
        return ShardRouter.scatter(len(leases), parts, answers)

    async def reap(self, *, limit: int = DEFAULT_REAP_LIMIT) -> Reaped:
        """Reap every shard; the sums."""
        return ShardRouter.merge_reaped([await s.reap(limit=limit) for s in self.shards])

    async def _find(self, job_id: str, call: Any) -> Any:
        for index in self.router.search_order(check_id(job_id)):
            try:
                return await call(self.shards[index])
            except JobNotFound:
                continue
        raise JobNotFound("no such job on any shard", queue=self.name, job_id=job_id)

    async def cancel(self, job_id: str) -> bool:
        """Cancel a waiting or delayed job, on whichever shard holds it."""
        return bool(await self._find(job_id, lambda shard: shard.cancel(job_id)))

    async def inspect(self, job_id: str) -> JobInfo:
        """Everything known about one job, from whichever shard holds it."""
        info: JobInfo = await self._find(job_id, lambda shard: shard.inspect(job_id))
        return info

    async def requeue(
        self, ids: Sequence[str] = (), *, limit: int = 100, request_id: str | None = None
    ) -> list[ItemStatus]:
        """Dead jobs back to waiting on every shard; see :meth:`ShardedQueue.requeue`."""
        plan = self.router.request_plan(request_id)
        parts = [await s.requeue(ids, limit=limit, request_id=plan[i])
                 for i, s in enumerate(self.shards)]  # fmt: skip
        return ShardRouter.merge_listed(ids, parts)

    async def purge(
        self,
        state: State | str,
        ids: Sequence[str] = (),
        *,
        limit: int = 100,
        request_id: str | None = None,
    ) -> list[ItemStatus]:
        """Delete finished jobs on every shard; see :meth:`ShardedQueue.purge`."""
        plan = self.router.request_plan(request_id)
        parts = [await s.purge(state, ids, limit=limit, request_id=plan[i])
                 for i, s in enumerate(self.shards)]  # fmt: skip
        return ShardRouter.merge_listed(ids, parts)

    async def stats(self, *, active_limit: int = 100) -> QueueStats:
        """The shards' stats added up."""
        parts = [await s.stats(active_limit=active_limit) for s in self.shards]
        return self.router.merge_stats(parts, active_limit)


def wake_keys(queue: Any) -> list[str]:
    """The wake LIST(s) a worker of ``queue`` waits on: one per shard, or the queue's own."""
    if isinstance(queue, _Shards):
        return queue.wake_keys
    return [queue.ops.keys.key("wake")]
