"""What the worker core asks its shell to do: one small value per action, each tagged with the
*lane* that performs it.

A lane is one helper of the shell, a thread or an asyncio task that does its actions one after
the other, so that a slow call on one lane never holds up another (a long claim never delays a
heartbeat):

* ``claim``: claims, idle waits for work, and hand-backs (``release``);
* ``acknowledge``: completions (in batches) and failures (one ``fail`` each);
* ``heartbeat``: heartbeats and reaping (the worker's maintenance);
* ``run``: jobs for the runners (threads, or one task per job);
* ``local``: done at once by whoever received it, with no Redis call worth waiting for:
  cancelling running jobs, ending an idle wait.

``Exit`` tells a lane to end. Actions compare by identity: the core recognises the answer to
each one it handed out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

from ._codec import Encoded
from ._worker_context import JobContext


class Lane(Enum):
    """Which helper of a worker performs an action (see the module docstring)."""

    CLAIM = "claim"
    ACK = "acknowledge"
    BEAT = "heartbeat"
    RUN = "run"
    LOCAL = "local"


@dataclass(frozen=True, eq=False)
class Claim:
    """Lease up to ``count`` jobs (at most 1000) with ``claim_id`` (the same id for every
    retry of this claim, so a repeat after a lost reply leases nothing new)."""

    lane: ClassVar[Lane] = Lane.CLAIM
    count: int
    claim_id: str
    lease_ms: int | None


@dataclass(frozen=True, eq=False)
class WaitForWork:
    """Block on the wake list for at most ``timeout_s``; report :meth:`WorkerCore.waited`."""

    lane: ClassVar[Lane] = Lane.CLAIM
    timeout_s: float


@dataclass(frozen=True, eq=False)
class Release:
    """Hand back these leases; ``started`` maps the token of each whose handler began to how
    many ms ago (those keep their attempt counted)."""

    lane: ClassVar[Lane] = Lane.CLAIM
    contexts: tuple[JobContext, ...]
    started: Mapping[str, int]


@dataclass(frozen=True, eq=False)
class Complete:
    """Complete these leases, each with its result encoded already."""

    lane: ClassVar[Lane] = Lane.ACK
    items: tuple[tuple[JobContext, Encoded], ...]


@dataclass(frozen=True, eq=False)
class Fail:
    """Fail one lease's attempt with ``error`` (retried per the job's policy if ``retryable``)."""

    lane: ClassVar[Lane] = Lane.ACK
    context: JobContext
    error: str
    retryable: bool


@dataclass(frozen=True, eq=False)
class Heartbeat:
    """Extend these leases (at most 1000); ``started`` as for :class:`Release`."""

    lane: ClassVar[Lane] = Lane.BEAT
    contexts: tuple[JobContext, ...]
    started: Mapping[str, int]
    lease_ms: int | None


@dataclass(frozen=True, eq=False)
class Reap:
    """Run the queue's bounded maintenance once (``reap(limit=limit)``)."""

    lane: ClassVar[Lane] = Lane.BEAT
    limit: int


@dataclass(frozen=True, eq=False)
class Run:
    """Run the handler for this job on a free runner."""

    lane: ClassVar[Lane] = Lane.RUN
    context: JobContext


@dataclass(frozen=True, eq=False)
class Cancel:
    """These jobs must stop: their cancel flags are set already; an asyncio worker also
    cancels their tasks."""

    lane: ClassVar[Lane] = Lane.LOCAL
    contexts: tuple[JobContext, ...]


@dataclass(frozen=True, eq=False)
class EndWait:
    """End the idle wait for work in progress (and any about to begin): the worker stops."""

    lane: ClassVar[Lane] = Lane.LOCAL


@dataclass(frozen=True, eq=False)
class Exit:
    """The lane ``lane`` has nothing more to do: end it."""

    lane: Lane


Action = (
    Claim
    | WaitForWork
    | Release
    | Complete
    | Fail
    | Heartbeat
    | Reap
    | Run
    | Cancel
    | EndWait
    | Exit
)
"""Anything the core asks for."""

RedisAction = Claim | Release | Complete | Fail | Heartbeat | Reap
"""The actions that are one (repeatable) Redis call each."""
