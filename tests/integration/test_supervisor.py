"""The :class:`~scheduler.supervisor.Supervisor` with real child processes: it restarts a child
that dies, stops restarting past its budget, leaves a child that finished alone, and stops
every child with SIGTERM, then SIGKILL after the grace."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from scheduler.supervisor import Supervisor

CHILD_LIFETIME_S = 30.0
"""The longest a test child lives on its own (in case a test leaves it behind)."""


def run_until_sigterm() -> None:
    """A child that exits 0 on SIGTERM (as a worker's graceful stop does)."""
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    stopped.wait(CHILD_LIFETIME_S)


def ignore_sigterm(ready_path: str) -> None:
    """A child that ignores SIGTERM (then creates ``ready_path``): only SIGKILL ends it early."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    Path(ready_path).touch()
    threading.Event().wait(CHILD_LIFETIME_S)


def crash() -> None:
    """A child that fails at once."""
    sys.exit(3)


def finish() -> None:
    """A child whose work is done: exit code 0."""


def wait_for(condition: Callable[[], bool], timeout: float = 10, what: str = "condition") -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def supervise() -> Iterator[Callable[..., Supervisor]]:
    """Start a Supervisor (``supervise(target, processes, **options)``); killed at the end."""
    started: list[Supervisor] = []

    def start(target: Callable[..., None], processes: int, **options: Any) -> Supervisor:
        supervisor = Supervisor(target, processes, **options)
        started.append(supervisor)
        supervisor.start()
        return supervisor

    yield start
    for supervisor in started:
        supervisor.kill()


def polled_until(supervisor: Supervisor, condition: Callable[[], bool], what: str) -> None:
    """Poll the supervisor (which restarts the dead) until ``condition`` holds."""
    wait_for(lambda: supervisor.poll() >= 0 and condition(), what=what)


def test_a_killed_child_is_restarted_and_stop_ends_all(
    supervise: Callable[..., Supervisor],
) -> None:
    supervisor = supervise(run_until_sigterm, 2)
    polled_until(supervisor, lambda: len(supervisor.pids) == 2, "two children")
    first = supervisor.pids
    os.kill(first[0], signal.SIGKILL)
    polled_until(
        supervisor,
        lambda: len(supervisor.pids) == 2 and first[0] not in supervisor.pids,
        "a new child",
    )
    assert supervisor.restarts == 1 and first[1] in supervisor.pids
    began = time.monotonic()
    assert supervisor.stop(grace_s=10) == []  # every child exited on SIGTERM
    assert time.monotonic() - began < 10
    assert supervisor.pids == [] and supervisor.poll() == 0


def test_restarts_stop_past_the_budget(supervise: Callable[..., Supervisor]) -> None:
    supervisor = supervise(crash, 2)
    polled_until(supervisor, lambda: supervisor.poll() == 0, "the children to give up")
    assert supervisor.restarts == 2  # two processes: two restarts per window, then no more
    assert supervisor.poll() == 0 and supervisor.restarts == 2


@pytest.mark.parametrize(
    ("target", "options"), [(finish, {}), (run_until_sigterm, {"restart": False})]
)
def test_a_child_is_not_restarted_after_exit_0_or_without_restart(
    supervise: Callable[..., Supervisor], target: Callable[[], None], options: dict[str, Any]
) -> None:
    supervisor = supervise(target, 1, **options)
    if target is run_until_sigterm:
        polled_until(supervisor, lambda: len(supervisor.pids) == 1, "the child")
        os.kill(supervisor.pids[0], signal.SIGKILL)
    polled_until(supervisor, lambda: supervisor.poll() == 0, "the child to end")
    assert supervisor.restarts == 0


def test_stop_kills_a_child_that_ignores_sigterm_after_the_grace(
    supervise: Callable[..., Supervisor], tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    supervisor = supervise(ignore_sigterm, 1, args=(str(ready),))
    polled_until(supervisor, ready.exists, "the child to ignore SIGTERM")
    pid = supervisor.pids[0]
    began = time.monotonic()
    assert supervisor.stop(grace_s=0.5) == [pid]
    assert 0.5 <= time.monotonic() - began < 5
    assert supervisor.pids == [] and supervisor.restarts == 0
