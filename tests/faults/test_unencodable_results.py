"""Results msgpack cannot encode: each fails its own job, and the workers go on.

A stream of jobs (:mod:`tests.faults.stream`) in which, after a clean first third, one job in
ten asks the handler (through its payload) to return a value msgpack cannot encode: a ``set``,
a ``datetime``, a ``Decimal``, a dataclass, in turn. Those jobs are known by id and marked in
the history (an ``unencodable`` fault with how the error must name the type). Two worker
processes and a thread worker run the stream.

Each marked job must end dead at attempt 1 (non-retryable: the same code returns the same kind
of value again), its handler having run, with ``"result could not be encoded: ..."`` naming the
type; every other job must complete exactly once; every worker process must still be up, and
the other jobs complete after the first unencodable result about as fast as before it.
"""

from __future__ import annotations

import pytest

from tests.faults.harness import SLOW, Outcome
from tests.faults.recorder import UNENCODABLE
from tests.faults.stream import StreamJob, check_marked_stream, run_stream

KINDS = tuple(UNENCODABLE)
EVERY = 10
"""One unencodable result in this many jobs, after the clean first third."""
DEFAULT_SIZE = 240
SLOW_SIZE = 2400
COMMAND = (
    "SCHEDULER_SLOW=1 .venv/bin/python -m pytest -m slow tests/faults/test_unencodable_results.py"
)


def plan(size: int) -> list[StreamJob]:
    """``size`` jobs: a clean first third, then one in :data:`EVERY` returns an unencodable
    value, the kinds in turn."""
    clean = size // 3
    stream = []
    for n in range(size):
        if n >= clean and (n - clean) % EVERY == EVERY - 1:
            kind = KINDS[(n - clean) // EVERY % len(KINDS)]
            _, named = UNENCODABLE[kind]
            job = StreamJob(
                f"unencodable-{kind}-{n}", {"returns": kind}, mark="unencodable", detail=named
            )
            stream.append(job)
        else:
            stream.append(StreamJob(f"job-{n}", n))
    return stream


def scenario(size: int) -> Outcome:
    """``size`` jobs, one in ten of the last two thirds returning an unencodable result."""
    stream = plan(size)
    run = run_stream("results msgpack cannot encode", stream, max_payload_bytes=1024 * 1024)
    marked = sum(1 for job in stream if job.mark)
    return Outcome(run.report, COMMAND, run.notes(), {"unencodable": marked, "alive": run.alive})


def check_outcome(outcome: Outcome) -> None:
    """See :func:`tests.faults.stream.check_marked_stream`."""
    check_marked_stream(outcome, "unencodable")


def test_unencodable_results_fail_alone_and_the_workers_go_on() -> None:
    check_outcome(scenario(DEFAULT_SIZE))


@pytest.mark.slow
@pytest.mark.skipif(not SLOW, reason="the larger run: SCHEDULER_SLOW=1 pytest -m slow")
def test_unencodable_results_fail_alone_and_the_workers_go_on_at_scale() -> None:
    check_outcome(scenario(SLOW_SIZE))
