"""Poison payloads in a stream of good jobs: each fails alone, at once, and the workers go on.

A producer enqueues a stream of good jobs (recorded, through the client) and, after a clean
first third, one poison job in ten: payload bytes written past the client's checks by calling
the enqueue script directly, of each kind a worker cannot decode (not msgpack, cut short, an
ext type, a map key that is not a string, over the workers' ``max_payload_bytes``). Each poison
job is marked in the history (a ``poison`` fault with the text its error must contain). Two
worker processes (``tests.faults.agent``) and a thread worker in the test's process run the
stream (:mod:`tests.faults.stream`).

Every good job must complete exactly once and none may be dead; every poison job must end dead
at attempt 1 with ``"payload could not be decoded: ..."`` and its reason, without its handler
ever beginning; every worker process must still be up at the end. The report's rates compare
how fast the good jobs completed before the first poison job was claimed and after it (from
the history's times: a figure, checked only within a generous factor).
"""

from __future__ import annotations

import msgpack
import pytest

from tests.faults.harness import SLOW, Outcome
from tests.faults.stream import StreamJob, check_marked_stream, run_stream

WORKER_MAX_BYTES = 1024
"""The workers' size cap for a payload (the producer's is the default, 1 MiB)."""
POISONS: tuple[tuple[str, bytes, str], ...] = (
    ("format", b"\xc1", "payload is not valid msgpack: FormatError"),
    ("short", b"\x92\x01", "payload is not valid msgpack: ValueError"),
    ("ext", b"\xd4\x05\x00", "msgpack ext type 5 is not accepted"),
    ("mapkey", msgpack.packb({1: 2}), "payload is not valid msgpack: ValueError"),
    ("oversize", msgpack.packb("x" * 2000), f"over the limit of {WORKER_MAX_BYTES}"),
)
"""Each kind of poison: its name, the payload bytes, and what its error must say."""
EVERY = 10
"""One poison job in this many, after the clean first third of the stream."""
DEFAULT_SIZE = 240
"""Jobs in the default run, poison included."""
SLOW_SIZE = 2400
COMMAND = "SCHEDULER_SLOW=1 .venv/bin/python -m pytest -m slow tests/faults/test_poison_payloads.py"


def plan(size: int) -> list[StreamJob]:
    """``size`` jobs: a clean first third, then one poison job in :data:`EVERY`, the kinds in
    turn."""
    clean = size // 3
    stream = []
    for n in range(size):
        if n >= clean and (n - clean) % EVERY == EVERY - 1:
            kind, raw, error = POISONS[(n - clean) // EVERY % len(POISONS)]
            stream.append(StreamJob(f"poison-{kind}-{n}", raw=raw, mark="poison", detail=error))
        else:
            stream.append(StreamJob(f"job-{n}", n))
    return stream


def scenario(size: int) -> Outcome:
    """``size`` jobs, one in ten of the last two thirds poison."""
    stream = plan(size)
    run = run_stream(
        "poison payloads (undecodable) in the stream", stream, max_payload_bytes=WORKER_MAX_BYTES
    )
    poison = sum(1 for job in stream if job.mark)
    return Outcome(run.report, COMMAND, run.notes(), {"poison": poison, "alive": run.alive})


def check_outcome(outcome: Outcome) -> None:
    """See :func:`tests.faults.stream.check_marked_stream`."""
    check_marked_stream(outcome, "poison")


def test_poison_payloads_fail_alone_and_the_workers_go_on() -> None:
    check_outcome(scenario(DEFAULT_SIZE))


@pytest.mark.slow
@pytest.mark.skipif(not SLOW, reason="the larger run: SCHEDULER_SLOW=1 pytest -m slow")
def test_poison_payloads_fail_alone_and_the_workers_go_on_at_scale() -> None:
    check_outcome(scenario(SLOW_SIZE))
