"""Redis killed with SIGKILL and restarted from its append-only file in the middle of a load:
the clients carry on (redis-py loads the scripts again after ``NOSCRIPT``; the workers repeat
their calls with backoff), no acknowledged job is lost, none appears twice as a job, and each
has at most one accepted completion.

The server runs with ``appendfsync always``, so every write Redis acknowledged is on disk when
it dies (with ``everysec`` up to a second of acknowledged writes can go, which this test would
rightly count as lost jobs).
"""

from __future__ import annotations

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
from tests.faults.history import HistoryWriter, read_history

LEASE_MS = 2000
DEFAULT_SIZE = 300
"""Jobs in the default run (one restart); one restart more per 500 jobs beyond."""
SLOW_SIZE = 3000
COMMAND = "SCHEDULER_SLOW=1 .venv/bin/python -m pytest -m slow tests/faults/test_redis_restart.py"


def scenario(size: int) -> Outcome:
    """Enqueue ``size`` jobs at a steady pace under two thread workers; restart Redis at even
    steps of the progress."""
    restarts = max(1, size // 500)
    server = LocalRedis(extra_args=["--appendonly", "yes", "--appendfsync", "always"])
    with server, run_folder("restart") as folder:
        writer = HistoryWriter(folder, "test")
        client = client_for(server.url, socket_timeout=1.0)

        def restart() -> None:
            writer.write("test", "fault", "restart")
            server.crash_and_restart()

        queue = load_with_faults(
            client,
            writer,
            size,
            lease_ms=LEASE_MS,
            interval_s=0.002,
            effect_s=0.002,
            faults=restarts,
            inject=restart,
        )
        bound_ms = LEASE_MS + REAP_INTERVAL_S * 1000
        report = finish("Redis killed (SIGKILL), restarted from AOF", folder, queue, bound_ms)
        client.close()
        records = read_history(folder)
        last = max(r.t for r in records if r.kind == "fault" and r.op == "restart")
        after = sum(
            1
            for r in records
            if r.t > last and r.kind == "ok" and r.op == "complete" and r.status == "ok"
        )
    notes = f"{restarts} restart(s); {after} completions after the last"
    return Outcome(report, COMMAND, notes=notes, figures={"after": after})


def check_outcome(outcome: Outcome, size: int) -> None:
    """The checker finds nothing wrong, and every restart happened."""
    report = outcome.report
    assert report.problems() == [], report.problems()
    assert report.jobs == size
    assert report.max_accepted == 1
    assert report.faults == max(1, size // 500)
    assert outcome.figures["after"] > 0, "work went on after the last restart"


def test_clients_carry_on_through_a_redis_restart() -> None:
    check_outcome(scenario(DEFAULT_SIZE), DEFAULT_SIZE)


@pytest.mark.slow
@pytest.mark.skipif(not SLOW, reason="the larger run: SCHEDULER_SLOW=1 pytest -m slow")
def test_clients_carry_on_through_redis_restarts_at_scale() -> None:
    check_outcome(scenario(SLOW_SIZE), SLOW_SIZE)
