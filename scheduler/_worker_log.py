"""The worker's log records about jobs and about its own helpers, in one place so that both
workers say the same thing the same way.

A record about a job names its id, queue, attempt and worker in the text and, for structured
handlers, in the record's attributes ``job_id``, ``queue``, ``attempt``, ``worker``.

An answer that refuses a call is told apart from one whose meaning is unknown: a call repeated
after a connection error may have been applied by its first try, so a refusal of the repeat
(``lease_lost``, ``not_found``) says "outcome unknown after a retry", not "refused".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ._models import Failed, ItemStatus, Job
from ._status import Status
from ._worker_context import JobContext, describe_error

logger = logging.getLogger("scheduler.worker")


def log_job(level: int, job: Job, worker_id: str, message: str, *args: object) -> None:
    """One log record about a job (see the module docstring)."""
    extra = {"job_id": job.id, "queue": job.queue, "attempt": job.attempt, "worker": worker_id}
    logger.log(
        level,
        "job %s on queue %s (attempt %d, worker %s): " + message,
        job.id, job.queue, job.attempt, worker_id, *args,
        extra=extra,
    )  # fmt: skip


def log_lost(context: JobContext) -> None:
    """A lease found lost: the job is being cancelled on this worker."""
    log_job(logging.WARNING, context.job, context.worker_id, "lease lost; job cancelled")


def log_discarded(context: JobContext, why: str) -> None:
    """A run that ended after its lease stopped being ours: nothing is reported for it."""
    log_job(logging.INFO, context.job, context.worker_id, "result discarded: %s", why)


def log_completions(
    contexts: Sequence[JobContext], statuses: Sequence[ItemStatus], retried: bool
) -> None:
    """Log each completion Redis did not accept now. ``duplicate`` means this very lease had
    completed the job already: a repeated call whose first try was applied."""
    for context, item in zip(contexts, statuses, strict=False):
        status = item.status
        if status is Status.OK:
            continue
        job, worker = context.job, context.worker_id
        if status is Status.DUPLICATE:
            log_job(logging.DEBUG, job, worker, "completion recorded by an earlier try")
        elif retried:
            log_job(
                logging.WARNING, job, worker,
                "completion outcome unknown after a retry (%s): its first try may have been "
                "recorded", status.value,
            )  # fmt: skip
        else:
            log_job(
                logging.WARNING, job, worker,
                "completion refused (%s): the lease is no longer ours", status.value,
            )  # fmt: skip


def log_failed(context: JobContext, failed: Failed, text: str) -> None:
    """The outcome of failing a job's attempt."""
    earlier = ", recorded by an earlier try" if failed.repeated else ""
    log_job(
        logging.INFO,
        context.job,
        context.worker_id,
        "failed (%s%s): %s",
        failed.outcome.value,
        earlier,
        text,
    )


def log_fail_refused(context: JobContext, error: BaseException, text: str, retried: bool) -> None:
    """A ``fail`` answered with a :class:`~scheduler.errors.JobError` (``LeaseLost``,
    ``JobNotFound``, ``RecordUnreadable``): the lease is no longer ours, or, after a retry, the
    first try may have been recorded."""
    if retried:
        message = "failure outcome unknown after a retry (%s): its first try may have been "
        message += "recorded: %s"
    else:
        message = "failure not recorded, the lease is no longer ours (%s): %s"
    log_job(logging.WARNING, context.job, context.worker_id, message, describe_error(error), text)


def log_released(worker_id: str, statuses: Sequence[ItemStatus], retried: bool) -> None:
    """How many of a hand-back Redis took (the others had ended meanwhile, or, after a retry,
    had been handed back by the first try)."""
    done = sum(1 for s in statuses if s.status in (Status.OK, Status.DUPLICATE))
    logger.info("worker %s handed back %d unfinished job(s)", worker_id, done)
    if done < len(statuses):
        logger.info(
            "worker %s: %d lease(s) had ended before the hand-back%s",
            worker_id,
            len(statuses) - done,
            " (outcome unknown after a retry)" if retried else "",
        )


def log_given_up(worker_id: str, what: str, count: int) -> None:
    """A call abandoned because the worker's stop deadline passed (Redis did not answer)."""
    logger.warning(
        "worker %s: gave up %s for %d job(s) at the stop deadline; their leases expire on "
        "their own",
        worker_id,
        what,
        count,
    )


def log_helper_failed(worker_id: str, lane: str, error: BaseException, first: bool) -> None:
    """An unexpected error in one of the worker's helpers (a bug, not a bad job), with its
    traceback. The first one stops the worker."""
    if first:
        message = "worker %s: its %s helper failed; the worker stops (no more claims or "
        message += "heartbeats; unfinished jobs are handed back or their leases expire)"
    else:
        message = "worker %s: its %s helper failed again while stopping"
    logger.error(message, worker_id, lane, exc_info=(type(error), error, error.__traceback__))
