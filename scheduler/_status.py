"""The closed vocabularies shared with the Lua scripts: statuses, states, lease outcomes, the
reasons a record cannot be read, and the fields of a job record.

Each mirrors a table in ``lua/lib/status.lua`` or ``lua/lib/job.lua``;
``tests/unit/test_parity.py`` reads the Lua side and fails if the two ever disagree.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """The first element of every script reply."""

    OK = "ok"
    EMPTY = "empty"
    NOT_FOUND = "not_found"
    DUPLICATE = "duplicate"
    LEASE_LOST = "lease_lost"
    BAD_STATE = "bad_state"
    UNREADABLE = "unreadable"
    BAD_ARG = "bad_arg"


class State(StrEnum):
    """The state of a job. A job is in exactly one state at any instant.

    ``waiting`` and ``delayed`` are pending (not started); ``completed``, ``dead`` and
    ``cancelled`` are terminal (only a requeue from the dead letters leaves one).
    """

    WAITING = "waiting"
    DELAYED = "delayed"
    ACTIVE = "active"
    COMPLETED = "completed"
    DEAD = "dead"
    CANCELLED = "cancelled"

    @property
    def is_pending(self) -> bool:
        """True for a job that waits to run: waiting or delayed."""
        return self in PENDING_STATES

    @property
    def is_terminal(self) -> bool:
        """True for a finished job: completed, dead or cancelled."""
        return self in TERMINAL_STATES


PENDING_STATES = frozenset({State.WAITING, State.DELAYED})
TERMINAL_STATES = frozenset({State.COMPLETED, State.DEAD, State.CANCELLED})


class Outcome(StrEnum):
    """How a job's latest lease ended (``NONE`` before its first claim)."""

    NONE = ""
    RUNNING = "running"
    COMPLETED = "completed"
    RETRY = "retry"
    DEAD = "dead"
    EXPIRED = "expired"
    RETURNED = "returned"


class Unreadable(StrEnum):
    """Why a job record cannot be read by this version of the package.

    ``NEWER``: written by a newer version (a rolling upgrade, or a rollback): it is left
    untouched, for a worker of that version. ``CORRUPT``: no version can read it: it is moved to
    the queue's quarantine, which trimming never touches.
    """

    NEWER = "newer"
    CORRUPT = "corrupt"


JOB_FIELDS: tuple[str, ...] = (
    "state",
    "attempt",
    "max_attempts",
    "priority",
    "lease_ms",
    "backoff_ms",
    "backoff_max_ms",
    "jitter_pm",
    "keep_result_ms",
    "keep_dead_ms",
    "token",
    "outcome",
    "deadline_ms",
    "worker",
    "created_ms",
    "ready_ms",
    "leased_ms",
    "started_ms",
    "finished_ms",
    "payload_bytes",
)
"""The fields of a job record, in the order ``inspect.lua`` returns them."""
