"""The package as a Redis user with only :data:`scheduler._server_checks.ACL_RULE`: the thread
and asyncio workers run jobs, every command line command works (``doctor`` says what it could
not check), an idle worker stops at once without ``CLIENT UNBLOCK``, and the server refused
nothing but the ``INFO`` and ``CONFIG GET`` the start-up checks do without (read from
``ACL LOG``). The user is made on the test server for each test and deleted after.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

from scheduler import JobOptions, Queue, State
from scheduler.__main__ import main
from scheduler._server_checks import ACL_COMMANDS, ACL_RULE, check_server
from scheduler.aio import AsyncQueue
from scheduler.aio_worker import AsyncWorker
from scheduler.connection import connect, connect_async
from scheduler.worker import JobContext, Worker

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 10.0
IDLE_STOP_S = 0.5
"""How soon stop() must end an idle worker's run() (its idle wait is 30 s)."""
ALLOWED_REFUSALS = {("command", "info"), ("command", "config|get"), ("command", "client|setinfo")}
"""What the server may refuse this user: the start-up checks' INFO and CONFIG GET, and the
CLIENT SETINFO redis-py sends on connect (Redis 7.2+; 7.0 does not know it)."""
TASKS = """
from scheduler.tasks import TaskRegistry

app = TaskRegistry()


@app.task(name="add")
def add(a, b):
    return a + b
"""


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = DEADLINE_S) -> None:
    """Poll ``check`` until it holds, failing after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        pause.wait(0.01)


class AclUser:
    """A user on the test server with only ACL_RULE; ``url`` logs in as it."""

    def __init__(self, admin: redis.Redis, redis_url: str) -> None:
        self.admin = admin
        self.name = f"least-{uuid.uuid4().hex[:8]}"
        password = uuid.uuid4().hex
        admin.execute_command("ACL", "SETUSER", self.name, "on", f">{password}", *ACL_RULE.split())
        where = urlsplit(redis_url)
        self.url = f"redis://{self.name}:{password}@{where.hostname}:{where.port}/0"

    def refusals(self) -> set[tuple[str, str]]:
        """What the server refused this user so far: (reason, command or key) from ACL LOG."""
        entries: list[dict[str, Any]] = self.admin.acl_log(count=1000)
        return {(str(e["reason"]), str(e["object"])) for e in entries if e["username"] == self.name}


@pytest.fixture
def user(r: redis.Redis, redis_url: str) -> Iterator[AclUser]:
    """A fresh least-privilege user; at the end, checks that it was refused nothing else than
    :data:`ALLOWED_REFUSALS`, and deletes it."""
    r.acl_log_reset()
    made = AclUser(r, redis_url)
    yield made
    refused = made.refusals()
    r.acl_deluser(made.name)
    assert refused <= ALLOWED_REFUSALS, f"refused: {refused - ALLOWED_REFUSALS}"


def test_the_rule_has_nothing_dangerous_or_admin(r: redis.Redis) -> None:
    dangerous = set(r.acl_cat("dangerous")) | set(r.acl_cat("admin"))
    assert {"info", "config|get", "client|unblock", "flushall"} <= dangerous  # read right
    assert not dangerous & set(ACL_COMMANDS)


def test_the_user_may_touch_only_keys_under_the_prefix(user: AclUser) -> None:
    client = connect(user.url)
    with pytest.raises(redis.exceptions.NoPermissionError):
        Queue(client, "jobs", prefix="other").enqueue("x")
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.info("server")
    client.close()
    user.admin.acl_log_reset()  # those refusals were the point


def blocked_waits(admin: redis.Redis, name: str) -> int:
    """How many connections of user ``name`` are blocked in BLPOP."""
    return sum(1 for c in admin.client_list() if c.get("user") == name and c.get("cmd") == "blpop")


def test_a_thread_worker_runs_jobs_and_an_idle_one_stops_at_once(
    user: AclUser, caplog: pytest.LogCaptureFixture
) -> None:
    client = connect(user.url)
    queue = Queue(client, "least")
    ran: list[str] = []
    worker = Worker(queue, lambda job, context: ran.append(job.id), max_idle_s=30)
    thread = threading.Thread(target=worker.run, daemon=True)
    with caplog.at_level(logging.WARNING, logger="scheduler"):
        thread.start()
        ids = [queue.enqueue(n).id for n in range(20)]
        wait_until(lambda: queue.stats().counts[State.COMPLETED] == 20, "every job completes")
        wait_until(lambda: blocked_waits(user.admin, user.name) == 1, "the worker waits idle")
        began = time.monotonic()
        worker.stop()
        thread.join(DEADLINE_S)
        took = time.monotonic() - began
    assert not thread.is_alive()
    assert took < IDLE_STOP_S, f"stop() to run() returning took {took:.3f} s"
    assert sorted(ran) == sorted(ids)
    assert "INFO is not allowed" in caplog.text and "CONFIG GET is not allowed" in caplog.text
    assert {("command", "info"), ("command", "config|get")} <= user.refusals()  # ACL LOG read
    client.close()


def test_an_asyncio_worker_runs_jobs(user: AclUser) -> None:
    async def scenario() -> list[str]:
        client = connect_async(user.url)
        queue = AsyncQueue(client, "least-aio")
        ran: list[str] = []

        async def handler(job: Any, context: JobContext) -> None:
            ran.append(job.id)

        worker = AsyncWorker(queue, handler, max_idle_s=30)
        task = asyncio.create_task(worker.run())
        ids = [(await queue.enqueue(n)).id for n in range(10)]
        deadline = time.monotonic() + DEADLINE_S
        while (await queue.stats()).counts[State.COMPLETED] < 10:
            assert time.monotonic() < deadline, "the asyncio worker did not finish the jobs"
            await asyncio.sleep(0.01)
        worker.stop()
        await asyncio.wait_for(task, DEADLINE_S)
        await client.aclose()
        assert sorted(ran) == sorted(ids)
        return ran

    assert len(asyncio.run(scenario())) == 10


def test_check_server_says_what_it_could_not_check(user: AclUser) -> None:
    client = connect(user.url)
    warnings = check_server(client)
    client.close()
    assert len(warnings) == 2
    assert "INFO is not allowed" in warnings[0] and "CONFIG GET is not allowed" in warnings[1]


@pytest.fixture
def run_main(
    capsys: pytest.CaptureFixture[str], user: AclUser
) -> Iterator[Callable[..., tuple[int, str, str]]]:
    """``run_main(*argv)`` runs the command line in-process as the user: (code, out, err)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def run(*argv: str) -> tuple[int, str, str]:
        code = main([*argv, "--redis-url", user.url])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    yield run
    root.handlers[:] = handlers
    root.setLevel(level)


def test_the_command_line_works_for_the_user(
    run_main: Callable[..., tuple[int, str, str]], r: redis.Redis
) -> None:
    code, out, err = run_main("enqueue", "add", "--args", "[1, 2]", "--queue", "cli", "--id", "j1")
    assert (code, out.strip(), err) == (0, "j1 created (waiting)", "")
    code, out, err = run_main("stats", "--json")  # the queue found with SCAN
    assert code == 0 and '"waiting": 1' in out, err
    code, out, err = run_main("inspect", "j1", "--queue", "cli")
    assert code == 0 and "state: waiting" in out, err
    code, out, err = run_main("cancel", "j1", "--queue", "cli")
    assert (code, out.strip()) == (0, "j1 cancelled"), err
    queue = Queue(r, "cli")
    queue.enqueue("work", id="d1", options=JobOptions(max_attempts=1))
    queue.fail(queue.claim("w").jobs[0], "boom", retryable=False)
    code, out, err = run_main("dead", "list", "--queue", "cli")  # ZRANGE, then inspect
    assert code == 0 and "d1  attempt 1/1" in out and "boom" in out, err
    code, out, err = run_main("dead", "requeue", "--queue", "cli", "d1")
    assert code == 0 and "d1 requeued" in out, err


def test_doctor_says_what_it_could_not_check(run_main: Callable[..., tuple[int, str, str]]) -> None:
    code, out, err = run_main("doctor")
    assert code == 0, out + err
    assert "server:           version not checked (INFO refused" in out
    assert "maxmemory-policy: not checked (CONFIG GET refused" in out
    assert "scripts load:     yes" in out and "median of 20 PINGs" in out
    assert "NOT CHECKED: INFO is not allowed" in out
    assert "NOT CHECKED: CONFIG GET is not allowed" in out
    assert out.strip().endswith(
        "no problem found; 2 check(s) not allowed to this user (see NOT CHECKED)"
    )


def test_a_cli_worker_runs_jobs_and_stops_at_once_on_sigterm(
    user: AclUser, r: redis.Redis, tmp_path: Path
) -> None:
    (tmp_path / "least_tasks.py").write_text(TASKS)
    queue = Queue(r, "cli-worker")
    ids = [queue.enqueue({"task": "add", "args": [n, 1], "kwargs": {}}).id for n in range(10)]
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "scheduler", "worker", "least_tasks:app", "--queue",
             "cli-worker", "--max-idle-s", "30", "--redis-url", user.url],
            cwd=tmp_path, env=dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}"),
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_until(
            lambda: all(queue.inspect(i).state is State.COMPLETED for i in ids), "the jobs run"
        )
        wait_until(lambda: blocked_waits(user.admin, user.name) == 1, "the worker waits idle")
        began = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(DEADLINE_S) == 0, log.read_text()
        assert time.monotonic() - began < 2.0, "an idle CLI worker stops at once"
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(5)
    assert [queue.inspect(i).result for i in ids] == [n + 1 for n in range(10)]
