"""Reading script replies into values and errors. Pure: no I/O.

Replies arrive as redis-py gives them with ``decode_responses=False``: lists of ``bytes`` and
``int``. The first element is always a :class:`Status`.
"""

from __future__ import annotations

from typing import Any

from . import _codec
from ._models import (
    ActiveJob,
    Claimed,
    Enqueued,
    Failed,
    Heartbeat,
    ItemStatus,
    Job,
    JobInfo,
    JobOptions,
    QueueStats,
    Reaped,
    UnreadableRecord,
)
from ._status import JOB_FIELDS, Outcome, State, Status, Unreadable
from .errors import (
    InvalidState,
    JobNotFound,
    LeaseLost,
    PayloadError,
    RecordUnreadable,
    ScriptError,
)

_STATUS_BY_REPLY: dict[Any, Status] = {status.value.encode(): status for status in Status}
"""Each status as a script's reply carries it (bytes), for a lookup without decoding."""
_STATE_BY_REPLY: dict[Any, State] = {state.value.encode(): state for state in State}
"""Each state as a script's reply carries it (bytes)."""
_OK_REPLY = Status.OK.value.encode()


def text(value: Any) -> str:
    """A reply element as text."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def status_of(reply: Any, script: str) -> Status:
    """The status of a reply; :class:`ScriptError` for ``bad_arg`` or an unexpected shape."""
    if not isinstance(reply, list) or not reply:
        raise ScriptError(f"unexpected reply {reply!r:.80}", script=script)
    status = _STATUS_BY_REPLY.get(reply[0])
    if status is None:
        try:
            status = Status(text(reply[0]))
        except ValueError:
            raise ScriptError(f"unknown status {reply[0]!r:.40}", script=script) from None
    if status is Status.BAD_ARG:
        detail = text(reply[1]) if len(reply) > 1 else "?"
        raise ScriptError(f"argument refused: {detail}", script=script)
    return status


class ReplyReader:
    """Turns each script's reply into the client's values for one queue."""

    def __init__(self, queue: str, max_payload_bytes: int) -> None:
        self.queue = queue
        self.max_payload_bytes = max_payload_bytes

    def decode(self, data: bytes | None, what: str) -> Any:
        """Decode a payload or result (None stays None)."""
        if data is None:
            return None
        return _codec.decode(data, max_bytes=self.max_payload_bytes, what=what)

    def try_decode(self, data: bytes | None, what: str) -> tuple[Any, str | None]:
        """Decode one payload or result: (value, None), or (None, why) when it cannot be
        decoded, so that one bad item never fails the others of its reply."""
        try:
            return self.decode(data, what), None
        except PayloadError as exc:
            return None, str(exc)

    def raise_for(self, status: Status, job_id: str) -> None:
        """Raise the error a per-job status stands for (nothing for ok or duplicate)."""
        queue = self.queue
        if status is Status.NOT_FOUND:
            raise JobNotFound("no such job", queue=queue, job_id=job_id)
        if status is Status.LEASE_LOST:
            raise LeaseLost("the lease is no longer held", queue=queue, job_id=job_id)
        if status is Status.UNREADABLE:
            raise RecordUnreadable(
                "the job's record is of a newer version, or corrupt", queue=queue, job_id=job_id
            )

    def enqueued(self, reply: Any) -> list[Enqueued]:
        """enqueue.lua: one :class:`Enqueued` per job, in order (state None for an existing
        record this version cannot read)."""
        status_of(reply, "enqueue")
        items = reply[2:]
        ok, states = _OK_REPLY, _STATE_BY_REPLY
        return [
            Enqueued(text(items[i]), items[i + 1] == ok, states.get(items[i + 2]))
            for i in range(0, len(items), 3)
        ]

    def claimed(self, reply: Any) -> Claimed:
        """claim.lua: the jobs leased, each payload decoded on its own: one that cannot be
        decoded leaves that job's ``payload`` None with the reason in ``payload_error``."""
        status = status_of(reply, "claim")
        if status is Status.EMPTY:
            next_ms = int(reply[2]) if len(reply) > 2 else 0
            return Claimed([], int(reply[1]), next_ms=next_ms or None)
        items = reply[2:]
        jobs = []
        for i in range(0, len(items), 5):
            payload, error = self.try_decode(items[i + 1], "payload")
            jobs.append(
                Job(
                    queue=self.queue,
                    id=text(items[i]),
                    payload=payload,
                    attempt=int(items[i + 2]),
                    token=text(items[i + 3]),
                    deadline_ms=int(items[i + 4]),
                    payload_error=error,
                )
            )
        return Claimed(jobs, int(reply[1]), repeated=status is Status.DUPLICATE)

    def item_statuses(self, ids: list[str], reply: Any) -> list[ItemStatus]:
        """complete.lua and release.lua: one status per item, in order."""
        status_of(reply, "complete/release")
        by_reply = _STATUS_BY_REPLY
        return [
            ItemStatus(job_id, by_reply.get(s) or Status(text(s)))
            for job_id, s in zip(ids, reply[1:], strict=True)
        ]

    def listed_statuses(self, reply: Any) -> list[ItemStatus]:
        """requeue.lua and purge.lua: (id, status) pairs after the count."""
        status_of(reply, "requeue/purge")
        items = reply[2:]
        return [
            ItemStatus(text(items[i]), Status(text(items[i + 1]))) for i in range(0, len(items), 2)
        ]

    def failed(self, job_id: str, reply: Any) -> Failed:
        """fail.lua: the outcome, or :class:`LeaseLost` / :class:`JobNotFound`."""
        status = status_of(reply, "fail")
        self.raise_for(status, job_id)
        return Failed(Outcome(text(reply[1])), int(reply[2]), repeated=status is Status.DUPLICATE)

    def heartbeat(self, reply: Any) -> Heartbeat:
        """heartbeat.lua: the lost ids and the new deadlines."""
        status_of(reply, "heartbeat")
        return Heartbeat([text(i) for i in reply[2]], [int(d) for d in reply[3]], int(reply[1]))

    def reaped(self, reply: Any) -> Reaped:
        """reap.lua: what was done."""
        status_of(reply, "reap")
        return Reaped(*(int(n) for n in reply[1:5]))

    def cancelled(self, job_id: str, reply: Any) -> bool:
        """cancel.lua: True when cancelled now, False when already cancelled."""
        status = status_of(reply, "cancel")
        self.raise_for(status, job_id)
        if status is Status.BAD_STATE:
            raise InvalidState(
                "only a waiting or delayed job can be cancelled",
                queue=self.queue,
                job_id=job_id,
                state=text(reply[1]),
            )
        return status is Status.OK

    def job_info(self, job_id: str, reply: Any) -> JobInfo:
        """inspect.lua: the whole record, payload and result each decoded on its own (one that
        cannot be decoded is None, with the reason and the raw bytes beside it).
        :class:`JobNotFound`, or :class:`RecordUnreadable` with the stored bytes."""
        status = status_of(reply, "inspect")
        if status is Status.NOT_FOUND:
            raise JobNotFound("no such job", queue=self.queue, job_id=job_id)
        if status is Status.UNREADABLE:
            raise self._unreadable(job_id, reply)
        record = dict(zip(JOB_FIELDS, reply[2], strict=True))
        numbers = {k: int(v) for k, v in record.items() if isinstance(v, int)}
        options = JobOptions(
            priority=numbers["priority"],
            max_attempts=numbers["max_attempts"],
            lease_ms=numbers["lease_ms"],
            backoff_ms=numbers["backoff_ms"],
            backoff_max_ms=numbers["backoff_max_ms"],
            jitter=numbers["jitter_pm"] / 1000,
            keep_result_ms=numbers["keep_result_ms"],
            keep_dead_ms=numbers["keep_dead_ms"],
        )
        payload, payload_error = self.try_decode(reply[3], "payload")
        result, result_error = self.try_decode(reply[4], "result")
        error = reply[5]
        return JobInfo(
            queue=self.queue,
            id=job_id,
            state=State(text(record["state"])),
            attempt=numbers["attempt"],
            max_attempts=numbers["max_attempts"],
            priority=numbers["priority"],
            token=text(record["token"]),
            outcome=Outcome(text(record["outcome"])),
            worker=text(record["worker"]),
            deadline_ms=numbers["deadline_ms"],
            created_ms=numbers["created_ms"],
            ready_ms=numbers["ready_ms"],
            leased_ms=numbers["leased_ms"],
            started_ms=numbers["started_ms"],
            finished_ms=numbers["finished_ms"],
            options=options,
            payload=payload,
            result=result,
            error=None if error is None else text(error),
            now_ms=int(reply[1]),
            payload_bytes=numbers["payload_bytes"],
            stub=bool(int(reply[6])),
            payload_error=payload_error,
            result_error=result_error,
            raw_payload=reply[3] if payload_error else None,
            raw_result=reply[4] if result_error else None,
        )

    def _unreadable(self, job_id: str, reply: Any) -> RecordUnreadable:
        reason, record, payload, note, quarantined = reply[2:7]
        details = UnreadableRecord(
            queue=self.queue,
            id=job_id,
            reason=Unreadable(text(reason)),
            record=record,
            payload=payload,
            note=None if note is None else text(note),
            quarantined_ms=int(quarantined) or None,
            now_ms=int(reply[1]),
        )
        kind = "of a newer version" if details.reason is Unreadable.NEWER else "corrupt"
        return RecordUnreadable(
            f"the job's record is {kind} ({len(record)} bytes)",
            queue=self.queue,
            job_id=job_id,
            record=details,
        )

    def stats(self, reply: Any) -> QueueStats:
        """stats.lua: counts per state, the oldest waiting job, the active jobs."""
        status_of(reply, "stats")
        order = (
            State.WAITING,
            State.DELAYED,
            State.ACTIVE,
            State.COMPLETED,
            State.DEAD,
            State.CANCELLED,
        )
        counts = {state: int(n) for state, n in zip(order, reply[2], strict=True)}
        oldest = int(reply[3])
        items = reply[4]
        active = [
            ActiveJob(
                text(items[i]),
                text(items[i + 1]),
                int(items[i + 2]),
                int(items[i + 3]),
                int(items[i + 4]),
                int(items[i + 5]),
            )
            for i in range(0, len(items), 6)
        ]
        running, stubs, quarantined, unreadable = (int(n) for n in reply[5])
        return QueueStats(
            self.queue,
            int(reply[1]),
            counts,
            oldest or None,
            active,
            running=running,
            stubs=stubs,
            quarantined=quarantined,
            unreadable=unreadable,
        )
