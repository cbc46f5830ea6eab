"""A frozen server: ``redis-server`` stopped with SIGSTOP for longer than the client timeout
(and than the lease), then resumed with SIGCONT, in the middle of a load.

While it is frozen, every call times out (its outcome unknown) and the requests pile up in the
server's socket buffers; on resuming, Redis runs them all, late. Its clock has moved on, so
leases handed out before the freeze have expired: their late completions are refused and the
jobs run again. Nothing may be lost, nothing unexpected appear, and no job have two accepted
completions.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest

from scheduler._local_redis import LocalRedis
from tests.faults.harness import (
    REAP_INTERVAL_S,
    SLOW,
    Outcome,
    client_for,
    finish,
    load_with_faults,
    run_folder,
)
from tests.faults.history import HistoryWriter

LEASE_MS = 1000
CLIENT_TIMEOUT_S = 0.5
FREEZE_S = 1.5
"""Three client timeouts, and longer than the lease."""
DEFAULT_SIZE = 300
"""Jobs in the default run (one freeze); one freeze more per 300 jobs beyond."""
SLOW_SIZE = 3000
COMMAND = "SCHEDULER_SLOW=1 .venv/bin/python -m pytest -m slow tests/faults/test_frozen_server.py"


def freeze(server: LocalRedis, writer: HistoryWriter) -> None:
    """Stop the server for :data:`FREEZE_S`, then resume it (recorded)."""
    assert server.process is not None
    pid = server.process.pid
    writer.write("test", "fault", "freeze")
    os.kill(pid, signal.SIGSTOP)
    try:
        threading.Event().wait(FREEZE_S)
    finally:
        os.kill(pid, signal.SIGCONT)
        writer.write("test", "fault", "thaw")


def scenario(size: int) -> Outcome:
    """``size`` jobs under two thread workers; the server frozen at even steps of progress."""
    freezes = max(1, size // 300)
    with LocalRedis() as server, run_folder("freeze") as folder:
        writer = HistoryWriter(folder, "test")
        client = client_for(server.url, socket_timeout=CLIENT_TIMEOUT_S)
        queue = load_with_faults(
            client,
            writer,
            size,
            lease_ms=LEASE_MS,
            interval_s=0.003,
            effect_s=0.005,
            faults=freezes,
            inject=lambda: freeze(server, writer),
        )
        bound_ms = LEASE_MS + REAP_INTERVAL_S * 1000
        report = finish("Redis frozen (SIGSTOP) past the timeout", folder, queue, bound_ms)
        client.close()
    return Outcome(report, COMMAND, notes=f"{freezes} freeze(s) of {FREEZE_S} s")


def check_outcome(outcome: Outcome, size: int) -> None:
    """The checker finds nothing wrong; calls timed out while the server was frozen."""
    report = outcome.report
    assert report.problems() == [], report.problems()
    assert report.jobs == size
    assert report.max_accepted == 1
    assert report.unknown > 0, "calls timed out during the freeze"


def test_clients_carry_on_after_the_server_froze() -> None:
    check_outcome(scenario(DEFAULT_SIZE), DEFAULT_SIZE)


@pytest.mark.slow
@pytest.mark.skipif(not SLOW, reason="the larger run: SCHEDULER_SLOW=1 pytest -m slow")
def test_clients_carry_on_after_the_server_froze_many_times() -> None:
    check_outcome(scenario(SLOW_SIZE), SLOW_SIZE)
