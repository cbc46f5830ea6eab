"""Named tasks: enqueue by task, dispatch by name in a worker, and clear non-retryable
failures for unknown tasks and arguments that do not fit."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from scheduler import JobOptions, Queue, State
from scheduler.tasks import BadArguments, TaskRegistry, current_job
from scheduler.worker import Worker

DEADLINE_S = 10.0


def run_until(worker: Worker, done: Callable[[], bool]) -> None:
    """Run ``worker`` in a thread until ``done()`` holds (bounded), then stop it."""
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    deadline, pause = time.monotonic() + DEADLINE_S, threading.Event()
    try:
        while not done():
            assert time.monotonic() < deadline, "timed out"
            pause.wait(0.01)
    finally:
        worker.stop()
        thread.join(DEADLINE_S)


def test_a_worker_dispatches_jobs_to_their_tasks(q: Queue) -> None:
    tasks = TaskRegistry()

    @tasks.task
    def add(a: int, b: int = 0) -> int:
        return a + b

    @tasks.task(name="shout", options=JobOptions(priority=5))
    def shout(text: str) -> str:
        assert current_job().job.payload["task"] == "shout"
        return text.upper()

    first = add.enqueue(q, 2, b=3).id
    second = shout.enqueue_with(q, ("hi",), id="greeting").id
    assert add(1, 1) == 2, "calling a task runs it here"
    run_until(Worker(q, tasks.handler), lambda: q.stats().counts[State.COMPLETED] == 2)
    assert q.inspect(first).result == 5
    assert (q.inspect(second).result, q.inspect(second).priority) == ("HI", 5)


def test_unknown_tasks_and_bad_arguments_go_to_the_dead_letters(q: Queue) -> None:
    tasks = TaskRegistry()

    @tasks.task(name="known")
    def known(a: int) -> int:
        return a

    unknown = q.enqueue({"task": "nope", "args": [], "kwargs": {}}).id
    misfit = q.enqueue({"task": "known", "args": [1, 2], "kwargs": {}}).id
    not_a_message = q.enqueue([1, 2, 3]).id
    ids = [unknown, misfit, not_a_message]
    run_until(
        Worker(q, tasks.handler),
        lambda: all(q.inspect(i).state is State.DEAD for i in ids),
    )
    assert "UnknownTask" in (q.inspect(unknown).error or "")
    assert "BadArguments" in (q.inspect(misfit).error or "")
    assert all(q.inspect(i).attempt == 1 for i in ids), "not retried"


def test_arguments_are_checked_before_enqueue_and_names_are_unique(q: Queue) -> None:
    tasks = TaskRegistry()

    @tasks.task(name="one")
    def one(a: int) -> int:
        return a

    with pytest.raises(BadArguments):
        one.enqueue(q)  # type: ignore[call-arg]
    assert q.stats().counts[State.WAITING] == 0
    with pytest.raises(Exception, match="registered already"):
        tasks.task(name="one")(lambda: None)
