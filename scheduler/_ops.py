"""The pure core: each method builds one script call (its keys and arguments) and says how to
read the reply. No I/O here: the sync and asyncio clients only send what this builds.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from . import _codec
from ._keys import QueueKeys
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
from ._replies import ReplyReader
from ._scripts import all_scripts
from ._status import State, Status
from ._validate import (
    MAX_BATCH,
    MAX_ERROR_BYTES,
    MAX_MS,
    check_batch,
    check_id,
    check_int,
    option_args,
)
from .errors import DuplicateJob, ValidationError

T = TypeVar("T")
Arg = str | bytes | int
LeaseRef = Job | tuple[str, str]
"""A lease, as the :class:`Job` a claim returned or as its ``(job id, token)``."""

DEFAULT_MAINTENANCE = 100
"""How many due delayed jobs and expired leases one claim call handles before it claims."""

DEFAULT_REAP_LIMIT = 50
"""How many items of each kind one reap call handles (see ``benchmarks/README.md`` for what a
call costs at each limit)."""

DEFAULT_MAX_CALL_BYTES = 4 * 1024 * 1024
"""The byte budget of one script call: the payloads of one enqueue call, the results of one
complete call, the payloads one claim returns (4 MiB). A larger batch is split over several
calls; one item larger than the budget goes alone."""

MAX_CALL_BYTES = 1024 * 1024 * 1024
"""The largest byte budget a queue may be given (lua/lib/args.lua MAX_CALL_BYTES)."""

QUARANTINE = "quarantine"
"""purge.lua's name for the quarantine, in place of a finished state."""

NOT_STARTED = -1
"""The ``started`` value of a lease whose handler has not begun (heartbeat and release)."""


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One script call: what to send, and how to turn the reply into a value or an error."""

    script: str
    keys: tuple[str, ...]
    args: tuple[Arg, ...]
    parse: Callable[[Any], T]


@dataclass(frozen=True, slots=True)
class Batch(Generic[T]):
    """A batch sent as one or more calls, split by the byte budget; each call answers a list,
    and the batch's answer is those lists joined in order. Each call is atomic on its own."""

    calls: tuple[Call[list[T]], ...]


def split_by_bytes(sizes: Sequence[int], budget: int) -> Iterator[range]:
    """Consecutive ranges of item positions, each holding items of at most ``budget`` bytes
    in all (an item larger than the budget alone)."""
    start, total = 0, 0
    for position, size in enumerate(sizes):
        if position > start and total + size > budget:
            yield range(start, position)
            start, total = position, 0
        total += size
    if start < len(sizes):
        yield range(start, len(sizes))


def _started(ref_token: str, started: Mapping[str, int] | None) -> int:
    if not started:
        return NOT_STARTED
    ago = started.get(ref_token)
    if ago is None:
        return NOT_STARTED
    return check_int(ago, "started (ms ago)", 0, MAX_MS)


def _ids(ids: Sequence[str]) -> list[str]:
    if isinstance(ids, str | bytes):
        raise ValidationError("ids must be a sequence of ids, not one string")
    if len(ids) > MAX_BATCH:
        raise ValidationError(f"at most {MAX_BATCH} ids per call, not {len(ids)}")
    return [check_id(i) for i in ids]


def new_id() -> str:
    """A fresh random id for a job or a claim: 128 random bits as 22 URL-safe base64
    characters (short, since every id is stored three times per job)."""
    return base64.urlsafe_b64encode(os.urandom(16))[:22].decode()


def _lease(ref: LeaseRef) -> tuple[str, str]:
    if isinstance(ref, Job):
        return ref.id, ref.token
    if not isinstance(ref, tuple) or len(ref) != 2:
        raise ValidationError(f"a lease is a Job or a (job id, token) tuple, not {ref!r:.60}")
    job_id, token = ref
    check_id(job_id)
    if not isinstance(token, str) or not 1 <= len(token) <= 64:
        raise ValidationError(f"invalid lease token {token!r}")
    return job_id, token


class QueueOps:
    """Builds every call for one queue. Shared by the sync and the asyncio clients."""

    def __init__(
        self,
        keys: QueueKeys,
        *,
        defaults: JobOptions,
        retention: Retention,
        max_payload_bytes: int,
        max_call_bytes: int = DEFAULT_MAX_CALL_BYTES,
    ) -> None:
        self.keys = keys
        self.queue = keys.queue
        self.defaults = defaults
        self.retention = retention
        self.max_payload_bytes = max_payload_bytes
        self.max_call_bytes = check_int(max_call_bytes, "max_call_bytes", 1, MAX_CALL_BYTES)
        self.scripts = all_scripts()
        self._read = ReplyReader(keys.queue, max_payload_bytes)
        self._default_options = option_args(defaults)
        check_int(retention.trim_batch, "trim_batch", 0, MAX_BATCH)
        check_int(retention.repeat_window_ms, "repeat_window_ms", 1, MAX_MS)
        for name in ("max_completed", "max_dead", "max_cancelled"):
            check_int(getattr(retention, name), name, 0, 10**9)

    def _call(self, script: str, args: Sequence[Arg], parse: Callable[[Any], T]) -> Call[T]:
        parts = self.scripts[script].key_parts
        return Call(script, self.keys.keys(parts), tuple(args), parse)

    def encode(self, value: Any, what: str = "payload") -> bytes:
        """Encode a payload or result with the queue's size limit."""
        return _codec.encode(value, max_bytes=self.max_payload_bytes, what=what)

    # -- enqueue ---------------------------------------------------------------------------

    def enqueue_many(self, specs: Sequence[JobSpec]) -> Batch[Enqueued]:
        """Enqueue a batch: each job is created, or found by its id. One atomic call when the
        payloads fit in the byte budget, else one atomic call per part of the batch that
        fits (every payload is encoded, and every id checked, before anything is sent)."""
        check_batch(list(specs), "enqueue_many")
        rows: list[tuple[str, bytes, tuple[int, ...]]] = []
        for spec in specs:
            options = spec.options
            if options is None or options is self.defaults:
                numbers = self._default_options  # checked once, when the queue was made
            else:
                numbers = option_args(options)
            job_id = new_id() if spec.id is None else check_id(spec.id)
            rows.append((job_id, self.encode(spec.payload), numbers))
        parts = split_by_bytes([len(payload) for _, payload, _ in rows], self.max_call_bytes)
        return Batch(tuple(self._enqueue_call([rows[i] for i in part]) for part in parts))

    def _enqueue_call(self, rows: list[tuple[str, bytes, tuple[int, ...]]]) -> Call[list[Enqueued]]:
        option_sets: dict[tuple[int, ...], int] = {}
        jobs: list[Arg] = []
        for job_id, payload, numbers in rows:
            index = option_sets.setdefault(numbers, len(option_sets) + 1)
            jobs += [job_id, payload, index]
        args: list[Arg] = [len(option_sets)]
        for numbers in option_sets:
            args.extend(numbers)
        args.append(len(rows))
        args.extend(jobs)
        return self._call("enqueue", args, self._read.enqueued)

    def enqueue(
        self, payload: Any, *, id: str | None = None, options: JobOptions | None = None
    ) -> Call[Enqueued]:
        """Enqueue one job; with an id that exists already, nothing changes."""
        (one,) = self.enqueue_many([JobSpec(payload, id, options)]).calls
        return Call(one.script, one.keys, one.args, lambda reply: one.parse(reply)[0])

    def enqueue_unique(
        self, payload: Any, *, id: str, options: JobOptions | None = None
    ) -> Call[Enqueued]:
        """Enqueue one job, raising :class:`DuplicateJob` if the id exists already."""
        one = self.enqueue(payload, id=id, options=options)

        def parse(reply: Any) -> Enqueued:
            result = one.parse(reply)
            if not result.created:
                raise DuplicateJob("a job with this id exists", queue=self.queue, job_id=id)
            return result

        return Call(one.script, one.keys, one.args, parse)

    # -- leases ----------------------------------------------------------------------------

    def claim(
        self,
        worker_id: str,
        *,
        count: int = 1,
        claim_id: str | None = None,
        lease_ms: int | None = None,
        maintenance: int = DEFAULT_MAINTENANCE,
    ) -> Call[Claimed]:
        """Lease up to ``count`` waiting jobs; repeating a claim id leases nothing new."""
        args = (
            check_id(worker_id, "worker id"),
            new_id() if claim_id is None else check_id(claim_id, "claim id"),
            check_int(count, "count", 1, MAX_BATCH),
            0 if lease_ms is None else check_int(lease_ms, "lease_ms", 1, MAX_MS),
            check_int(maintenance, "maintenance", 0, MAX_BATCH),
            self.max_call_bytes,
            self.retention.repeat_window_ms,
        )
        return self._call("claim", args, self._read.claimed)

    def complete_many(self, items: Sequence[tuple[LeaseRef, Any]]) -> Batch[ItemStatus]:
        """Complete many leased jobs; each item is (lease, result). Split over several calls
        when the results exceed the byte budget (each call atomic on its own); every result is
        encoded before anything is sent. A result already encoded (:class:`_codec.Encoded`)
        is sent as it is."""
        check_batch(list(items), "complete_many")
        rows = []
        for ref, result in items:
            job_id, token = _lease(ref)
            rows.append((job_id, token, self.encode(result, "result")))
        parts = split_by_bytes([len(data) for _, _, data in rows], self.max_call_bytes)
        return Batch(tuple(self._complete_call([rows[i] for i in part]) for part in parts))

    def _complete_call(self, rows: list[tuple[str, str, bytes]]) -> Call[list[ItemStatus]]:
        r = self.retention
        args: list[Arg] = [r.max_completed, r.trim_batch, r.repeat_window_ms, len(rows)]
        for row in rows:
            args.extend(row)
        ids = [job_id for job_id, _, _ in rows]
        return self._call("complete", args, lambda reply: self._read.item_statuses(ids, reply))

    def complete(self, ref: LeaseRef, result: Any = None) -> Call[bool]:
        """Complete one leased job. True when accepted now, False when this token had completed
        it already; :class:`LeaseLost`, :class:`JobNotFound` or :class:`RecordUnreadable`
        otherwise."""
        (one,) = self.complete_many([(ref, result)]).calls

        def parse(reply: Any) -> bool:
            item = one.parse(reply)[0]
            self._raise_for(item.status, item.id)
            return item.status is Status.OK

        return Call(one.script, one.keys, one.args, parse)

    def fail(
        self,
        ref: LeaseRef,
        error: str,
        *,
        retryable: bool = True,
        delay_ms: int | None = None,
    ) -> Call[Failed]:
        """Fail a leased job's attempt: retried after its backoff (or ``delay_ms``) while
        attempts are left, else dead-lettered; ``retryable=False`` dead-letters it now."""
        job_id, token = _lease(ref)
        if not isinstance(error, str):
            raise ValidationError(f"error must be text, not {type(error).__name__}")
        error_bytes = error.encode("utf-8", "replace")[:MAX_ERROR_BYTES]
        args = (
            job_id,
            token,
            error_bytes,
            1 if retryable else 0,
            -1 if delay_ms is None else check_int(delay_ms, "delay_ms", 0, MAX_MS),
            self.retention.max_dead,
            self.retention.trim_batch,
            self.retention.repeat_window_ms,
        )
        return self._call("fail", args, lambda reply: self._read.failed(job_id, reply))

    def heartbeat(
        self,
        refs: Sequence[LeaseRef],
        *,
        lease_ms: int | None = None,
        started: Mapping[str, int] | None = None,
    ) -> Call[Heartbeat]:
        """Extend many leases; the reply lists the ids whose lease is lost. ``started`` maps
        the token of each lease whose handler has begun to how long ago it began (ms): the
        first such report marks the job running (:attr:`JobInfo.started_ms`)."""
        check_batch(list(refs), "heartbeat")
        args: list[Arg] = [0 if lease_ms is None else check_int(lease_ms, "lease_ms", 1, MAX_MS)]
        args.append(len(refs))
        for ref in refs:
            job_id, token = _lease(ref)
            args += [job_id, token, _started(token, started)]
        return self._call("heartbeat", args, self._read.heartbeat)

    def release(
        self, refs: Sequence[LeaseRef], *, started: Mapping[str, int] | None = None
    ) -> Call[list[ItemStatus]]:
        """Hand back leases that will not be finished; the jobs wait again, first in line.
        ``started`` maps the token of each lease whose handler began to how long ago (ms):
        such a job keeps its attempt counted (on its last attempt it goes to the dead letters),
        while a job that never started gets its attempt back."""
        check_batch(list(refs), "release")
        args: list[Arg] = [len(refs)]
        ids = []
        for ref in refs:
            job_id, token = _lease(ref)
            ids.append(job_id)
            args += [job_id, token, _started(token, started)]
        return self._call("release", args, lambda reply: self._read.item_statuses(ids, reply))

    # -- maintenance and administration -----------------------------------------------------

    def reap(self, *, limit: int = DEFAULT_REAP_LIMIT) -> Call[Reaped]:
        """Promote due jobs, expire leases, trim old records: each bounded by ``limit``."""
        r = self.retention
        args = (
            check_int(limit, "limit", 1, MAX_BATCH),
            r.max_completed,
            r.max_dead,
            r.max_cancelled,
            r.repeat_window_ms,
        )
        return self._call("reap", args, self._read.reaped)

    def cancel(self, job_id: str) -> Call[bool]:
        """Cancel a waiting or delayed job. True when cancelled now, False if it already was."""
        r = self.retention
        args = (check_id(job_id), r.max_cancelled, r.trim_batch, r.repeat_window_ms)
        return self._call("cancel", args, lambda reply: self._read.cancelled(job_id, reply))

    def requeue(
        self, ids: Sequence[str] = (), *, limit: int = 100, request_id: str | None = None
    ) -> Call[list[ItemStatus]]:
        """Move dead jobs back to waiting (attempts reset): these ids, or the ``limit`` soonest
        to expire. The call carries a request id (made here unless given): a repeat of it
        within the repeat window answers as the first did and changes nothing."""
        args: list[Arg] = [
            new_id() if request_id is None else check_id(request_id, "request id"),
            self.retention.repeat_window_ms,
            check_int(limit, "limit", 1, MAX_BATCH),
            *_ids(ids),
        ]
        return self._call("requeue", args, self._read.listed_statuses)

    def purge(
        self,
        state: State | str,
        ids: Sequence[str] = (),
        *,
        limit: int = 100,
        request_id: str | None = None,
    ) -> Call[list[ItemStatus]]:
        """Delete finished jobs of ``state`` (completed, dead or cancelled) for good: these
        ids, or the ``limit`` soonest to expire; safe to repeat, as :meth:`requeue`."""
        try:
            state = State(state)
        except ValueError:
            raise ValidationError(f"unknown state {state!r}") from None
        if not state.is_terminal:
            raise ValidationError(f"only finished jobs can be purged, not {state.value} ones")
        args: list[Arg] = [
            new_id() if request_id is None else check_id(request_id, "request id"),
            self.retention.repeat_window_ms,
            state.value,
            check_int(limit, "limit", 1, MAX_BATCH),
            *_ids(ids),
        ]
        return self._call("purge", args, self._read.listed_statuses)

    def purge_quarantine(
        self, ids: Sequence[str] = (), *, limit: int = 100, request_id: str | None = None
    ) -> Call[list[ItemStatus]]:
        """Delete corrupt records set aside in the quarantine for good: these ids, or the
        ``limit`` oldest; safe to repeat, as :meth:`requeue`."""
        args: list[Arg] = [
            new_id() if request_id is None else check_id(request_id, "request id"),
            self.retention.repeat_window_ms,
            QUARANTINE,
            check_int(limit, "limit", 1, MAX_BATCH),
            *_ids(ids),
        ]
        return self._call("purge", args, self._read.listed_statuses)

    def inspect(self, job_id: str) -> Call[JobInfo]:
        """Everything known about one job; :class:`JobNotFound` if there is none."""
        return self._call("inspect", [check_id(job_id)], lambda r: self._read.job_info(job_id, r))

    def stats(self, *, active_limit: int = 100) -> Call[QueueStats]:
        """Counts per state, the oldest waiting job, and up to ``active_limit`` active jobs."""
        args = [check_int(active_limit, "active_limit", 0, MAX_BATCH)]
        return self._call("stats", args, self._read.stats)

    def _raise_for(self, status: Status, job_id: str) -> None:
        self._read.raise_for(status, job_id)
