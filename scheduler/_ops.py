"""The pure core: each method builds one script call (its keys and arguments) and says how to
read the reply. No I/O here: the sync and asyncio clients only send what this builds.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Sequence
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
from .errors import DuplicateJob, InvalidState, JobNotFound, LeaseLost, ValidationError

T = TypeVar("T")
Arg = str | bytes | int
LeaseRef = Job | tuple[str, str]
"""A lease, as the :class:`Job` a claim returned or as its ``(job id, token)``."""

DEFAULT_MAINTENANCE = 100
"""How many due delayed jobs and expired leases one claim call handles before it claims."""


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One script call: what to send, and how to turn the reply into a value or an error."""

    script: str
    keys: tuple[str, ...]
    args: tuple[Arg, ...]
    parse: Callable[[Any], T]


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
    ) -> None:
        self.keys = keys
        self.queue = keys.queue
        self.defaults = defaults
        self.retention = retention
        self.max_payload_bytes = max_payload_bytes
        self._read = ReplyReader(keys.queue, max_payload_bytes)
        self._default_options = option_args(defaults)
        check_int(retention.trim_batch, "trim_batch", 0, MAX_BATCH)
        for name in ("max_completed", "max_dead", "max_cancelled"):
            check_int(getattr(retention, name), name, 0, 10**9)

    def _call(self, script: str, args: Sequence[Arg], parse: Callable[[Any], T]) -> Call[T]:
        parts = all_scripts()[script].key_parts
        return Call(script, self.keys.keys(parts), tuple(args), parse)

    def encode(self, value: Any, what: str = "payload") -> bytes:
        """Encode a payload or result with the queue's size limit."""
        return _codec.encode(value, max_bytes=self.max_payload_bytes, what=what)

    # -- enqueue ---------------------------------------------------------------------------

    def enqueue_many(self, specs: Sequence[JobSpec]) -> Call[list[Enqueued]]:
        """Enqueue a batch atomically; each job is created, or found by its id."""
        check_batch(list(specs), "enqueue_many")
        option_sets: dict[tuple[int, ...], int] = {}
        jobs: list[Arg] = []
        for spec in specs:
            options = spec.options
            if options is None or options is self.defaults:
                numbers = self._default_options  # checked once, when the queue was made
            else:
                numbers = option_args(options)
            index = option_sets.setdefault(numbers, len(option_sets) + 1)
            job_id = new_id() if spec.id is None else check_id(spec.id)
            jobs += [job_id, self.encode(spec.payload), index]
        args: list[Arg] = [len(option_sets)]
        for numbers in option_sets:
            args.extend(numbers)
        args.append(len(specs))
        args.extend(jobs)
        return self._call("enqueue", args, self._read.enqueued)

    def enqueue(
        self, payload: Any, *, id: str | None = None, options: JobOptions | None = None
    ) -> Call[Enqueued]:
        """Enqueue one job; with an id that exists already, nothing changes."""
        many = self.enqueue_many([JobSpec(payload, id, options)])
        return Call(many.script, many.keys, many.args, lambda reply: many.parse(reply)[0])

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
        )
        return self._call("claim", args, self._read.claimed)

    def complete_many(self, items: Sequence[tuple[LeaseRef, Any]]) -> Call[list[ItemStatus]]:
        """Complete many leased jobs; each item is (lease, result)."""
        check_batch(list(items), "complete_many")
        args: list[Arg] = [self.retention.max_completed, self.retention.trim_batch, len(items)]
        ids = []
        for ref, result in items:
            job_id, token = _lease(ref)
            ids.append(job_id)
            args += [job_id, token, self.encode(result, "result")]
        return self._call("complete", args, lambda reply: self._read.item_statuses(ids, reply))

    def complete(self, ref: LeaseRef, result: Any = None) -> Call[bool]:
        """Complete one leased job. True when accepted now, False when this token had completed
        it already; :class:`LeaseLost` or :class:`JobNotFound` otherwise."""
        many = self.complete_many([(ref, result)])

        def parse(reply: Any) -> bool:
            item = many.parse(reply)[0]
            self._raise_for(item.status, item.id)
            return item.status is Status.OK

        return Call(many.script, many.keys, many.args, parse)

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
        )
        return self._call("fail", args, lambda reply: self._read.failed(job_id, reply))

    def heartbeat(
        self, refs: Sequence[LeaseRef], *, lease_ms: int | None = None
    ) -> Call[Heartbeat]:
        """Extend many leases; the reply lists the ids whose lease is lost."""
        check_batch(list(refs), "heartbeat")
        args: list[Arg] = [0 if lease_ms is None else check_int(lease_ms, "lease_ms", 1, MAX_MS)]
        args.append(len(refs))
        for ref in refs:
            args.extend(_lease(ref))
        return self._call("heartbeat", args, self._read.heartbeat)

    def release(self, refs: Sequence[LeaseRef]) -> Call[list[ItemStatus]]:
        """Hand back leases that will not be finished; the jobs wait again, first in line."""
        check_batch(list(refs), "release")
        args: list[Arg] = [len(refs)]
        ids = []
        for ref in refs:
            job_id, token = _lease(ref)
            ids.append(job_id)
            args += [job_id, token]
        return self._call("release", args, lambda reply: self._read.item_statuses(ids, reply))

    # -- maintenance and administration -----------------------------------------------------

    def reap(self, *, limit: int = 1000) -> Call[Reaped]:
        """Promote due jobs, expire leases, trim old records: each bounded by ``limit``."""
        r = self.retention
        args = (
            check_int(limit, "limit", 1, MAX_BATCH),
            r.max_completed,
            r.max_dead,
            r.max_cancelled,
        )
        return self._call("reap", args, self._read.reaped)

    def cancel(self, job_id: str) -> Call[bool]:
        """Cancel a waiting or delayed job. True when cancelled now, False if it already was."""
        args = (check_id(job_id), self.retention.max_cancelled, self.retention.trim_batch)
        return self._call("cancel", args, lambda reply: self._read.cancelled(job_id, reply))

    def requeue(self, ids: Sequence[str] = (), *, limit: int = 100) -> Call[list[ItemStatus]]:
        """Move dead jobs back to waiting (attempts reset): these ids, or the oldest ``limit``."""
        args: list[Arg] = [check_int(limit, "limit", 1, MAX_BATCH), *_ids(ids)]
        return self._call("requeue", args, self._read.listed_statuses)

    def purge(
        self, state: State | str, ids: Sequence[str] = (), *, limit: int = 100
    ) -> Call[list[ItemStatus]]:
        """Delete finished jobs of ``state`` (completed, dead or cancelled) for good."""
        try:
            state = State(state)
        except ValueError:
            raise ValidationError(f"unknown state {state!r}") from None
        if not state.is_terminal:
            raise ValidationError(f"only finished jobs can be purged, not {state.value} ones")
        args: list[Arg] = [state.value, check_int(limit, "limit", 1, MAX_BATCH), *_ids(ids)]
        return self._call("purge", args, self._read.listed_statuses)

    def inspect(self, job_id: str) -> Call[JobInfo]:
        """Everything known about one job; :class:`JobNotFound` if there is none."""
        return self._call("inspect", [check_id(job_id)], lambda r: self._read.job_info(job_id, r))

    def stats(self, *, active_limit: int = 100) -> Call[QueueStats]:
        """Counts per state, the oldest waiting job, and up to ``active_limit`` active jobs."""
        args = [check_int(active_limit, "active_limit", 0, MAX_BATCH)]
        return self._call("stats", args, self._read.stats)

    def _raise_for(self, status: Status, job_id: str) -> None:
        if status is Status.NOT_FOUND:
            raise JobNotFound("no such job", queue=self.queue, job_id=job_id)
        if status is Status.LEASE_LOST:
            raise LeaseLost("the lease is no longer held", queue=self.queue, job_id=job_id)
        if status is Status.BAD_STATE:
            raise InvalidState("wrong state", queue=self.queue, job_id=job_id, state="?")
