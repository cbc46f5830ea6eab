"""``scheduler worker --queue A --queue B``: a worker that crashes on one queue does not stop
the other queue's worker. The process keeps serving the other queue, and exits non-zero once
it is stopped, so that a supervisor restarts it. For thread and asyncio apps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import redis

from scheduler import Queue, State
from tests.integration.worker_kinds import eventually

ROOT = Path(__file__).resolve().parents[2]

APP = '''
from scheduler import Queue
from scheduler.aio import AsyncQueue
from scheduler.tasks import TaskRegistry

# A bug in one queue's claims: the worker of queue "broken" crashes at its first claim.
_claim, _async_claim = Queue.claim, AsyncQueue.claim


def claim(self, worker_id, **kwargs):
    if self.name == "broken":
        raise RuntimeError("a bug in the claims of queue broken")
    return _claim(self, worker_id, **kwargs)


async def async_claim(self, worker_id, **kwargs):
    if self.name == "broken":
        raise RuntimeError("a bug in the claims of queue broken")
    return await _async_claim(self, worker_id, **kwargs)


Queue.claim, AsyncQueue.claim = claim, async_claim
app = TaskRegistry()
'''
SYNC_TASK = """
@app.task(name="add")
def add(a, b):
    return a + b
"""
ASYNC_TASK = """
@app.task(name="add")
async def add(a, b):
    return a + b
"""


class Output:
    """A process's stderr, read line by line in a thread (so a test can wait for a line)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            self.lines.append(line)

    def text(self) -> str:
        return "".join(self.lines)

    def close(self) -> str:
        self._thread.join(10)
        assert self.process.stderr is not None
        self.process.stderr.close()
        return self.text()


@pytest.mark.parametrize("kind", ["thread", "asyncio"])
def test_a_crashed_queue_worker_leaves_the_other_queues_served(
    kind: str, tmp_path: Path, redis_url: str, r: redis.Redis
) -> None:
    (tmp_path / "split_app.py").write_text(APP + (SYNC_TASK if kind == "thread" else ASYNC_TASK))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    process = subprocess.Popen(
        [sys.executable, "-m", "scheduler", "worker", "split_app:app", "--redis-url", redis_url,
         "--queue", "good", "--queue", "broken", "--max-idle-s", "0.5", "--grace-s", "2"],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    output = Output(process)
    good = Queue(r, "good")
    try:
        eventually(lambda: "the other queues' workers go on" in output.text(), "the crash")
        ids = [good.enqueue({"task": "add", "args": [n, n], "kwargs": {}}).id for n in range(5)]
        eventually(
            lambda: all(good.inspect(i).state is State.COMPLETED for i in ids),
            "the good queue's jobs completed after the crash",
        )
        assert process.poll() is None, "the process serves on"
        assert [good.inspect(i).result for i in ids] == [0, 2, 4, 6, 8]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    err = output.close()
    assert "a bug in the claims of queue broken" in err
    assert "WorkerCrashed" in err
    assert process.returncode != 0, "a worker failed: a supervisor should restart the process"
