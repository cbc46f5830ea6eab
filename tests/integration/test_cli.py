"""The command line (``python -m scheduler ...``) as a user runs it, against the test Redis:
its output and exit code checked. Most commands run in a subprocess; the error rules (one line
on stderr, exit 2 for wrong usage and 1 for the rest, a traceback only with ``--debug``) run
in-process through :func:`scheduler.__main__.main`."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from scheduler import JobNotFound, JobOptions, Queue, State, _cli_jobs, _cli_stats
from scheduler.__main__ import main
from scheduler._local_redis import free_port

ROOT = Path(__file__).resolve().parents[2]
QUEUE = "cli"
TASKS_SOURCE = '''
import threading
from scheduler.tasks import TaskRegistry, current_job

app = TaskRegistry()


@app.task(name="add")
def add(a, b):
    return a + b


@app.task(name="patient")
def patient(seconds):
    """Waits for its cancel flag, at most ``seconds``."""
    current_job().cancelled.wait(seconds)
    return "done"


@app.task(name="stubborn")
def stubborn(seconds):
    """Ignores its cancel flag for ``seconds``."""
    threading.Event().wait(seconds)
    return "done"
'''
ASYNC_TASKS_SOURCE = """
import asyncio
from scheduler.tasks import TaskRegistry, current_job

app = TaskRegistry()


@app.task(name="add")
async def add(a, b):
    await asyncio.sleep(0)
    return [a + b, current_job().job.id]
"""
MIXED_TASKS_SOURCE = """
from scheduler.tasks import TaskRegistry

app = TaskRegistry()
app.task(name="plain")(lambda: 1)


@app.task(name="coroutine")
async def coroutine():
    return 2
"""
COMMANDS = (
    [],
    ["worker"],
    ["enqueue"],
    ["stats"],
    ["inspect"],
    ["dead"],
    ["dead", "list"],
    ["dead", "requeue"],
    ["dead", "purge"],
    ["cancel"],
    ["doctor"],
    ["demo"],
)


def cli_env(redis_url: str, python_path: Path | None = None) -> dict[str, str]:
    """The environment of a CLI subprocess: the test Redis, and ``python_path`` importable."""
    env = dict(os.environ, REDIS_URL=redis_url)
    if python_path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(python_path), str(ROOT)])
    return env


def cli(redis_url: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run ``python -m scheduler *args`` to the end, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "scheduler", *args],
        cwd=ROOT,
        env=cli_env(redis_url),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli_json(redis_url: str, *args: str) -> Any:
    """Run a command with ``--json`` that must succeed; its output parsed."""
    result = cli(redis_url, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def wait_for(condition: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def state_of(queue: Queue, job_id: str) -> State | None:
    """The job's state, or None when there is no such job."""
    try:
        return queue.inspect(job_id).state
    except JobNotFound:
        return None


class Background:
    """A CLI subprocess left running, its stdout and stderr in files; in a process group of its
    own, so that its worker processes (``--processes``) are killed with it at the end."""

    def __init__(self, redis_url: str, folder: Path, *args: str) -> None:
        self.out_path, self.err_path = folder / "out.txt", folder / "err.txt"
        with self.out_path.open("w") as out, self.err_path.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "scheduler", *args],
                cwd=folder,
                env=cli_env(redis_url, folder),
                stdout=out,
                stderr=err,
                text=True,
                start_new_session=True,
            )

    @property
    def out(self) -> str:
        """What the process printed so far."""
        return self.out_path.read_text()

    @property
    def err(self) -> str:
        """What the process logged so far."""
        return self.err_path.read_text()

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process."""
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        """The exit code; fails if the process runs longer than ``timeout`` seconds."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running after {timeout}s; stderr:\n{self.err}")

    def kill(self) -> None:
        """Kill the process and every process of its group (its worker processes, which a
        parent killed with SIGKILL would leave running) if they still run."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(5)


@pytest.fixture
def queue(make_queue: Callable[..., Queue]) -> Queue:
    """The queue the commands work on, on a clean database."""
    return make_queue(QUEUE)


@pytest.fixture
def background(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., Background]]:
    """Start a CLI subprocess in ``tmp_path`` (which holds the task modules); killed at the
    end if still running."""
    (tmp_path / "cli_tasks.py").write_text(TASKS_SOURCE)
    (tmp_path / "cli_async_tasks.py").write_text(ASYNC_TASKS_SOURCE)
    (tmp_path / "cli_mixed_tasks.py").write_text(MIXED_TASKS_SOURCE)
    started: list[Background] = []

    def start(*args: str) -> Background:
        started.append(Background(redis_url, tmp_path, *args))
        return started[-1]

    yield start
    for process in started:
        process.kill()


@pytest.mark.parametrize(
    ("app", "prefetch", "message"),
    [
        ("cli_tasks:app", "-1", "argument --prefetch: must be an integer in 0..1000, not -1"),
        ("cli_async_tasks:app", "10", "--prefetch applies to thread workers"),
    ],
)
def test_a_bad_prefetch_is_a_usage_error(
    redis_url: str,
    background: Callable[..., Background],
    tmp_path: Path,
    app: str,
    prefetch: str,
    message: str,
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scheduler", "worker", app, "--prefetch", prefetch],
        cwd=ROOT,
        env=cli_env(redis_url, tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"scheduler worker: error: {message}")


# -- errors: one line on stderr, exit 2 for wrong usage, 1 for the rest (in-process) -----------


@dataclass(frozen=True)
class Outcome:
    """What one in-process run of the command line did."""

    code: int
    out: str
    err: str


@pytest.fixture
def run_main(
    redis_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Outcome]]:
    """``run_main(*argv)`` runs :func:`scheduler.__main__.main` against the test Redis and
    returns its exit code and output; the logging set-up a command makes is undone after."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def run(*argv: str) -> Outcome:
        code = main(list(argv))
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    yield run
    root.handlers[:] = handlers
    root.setLevel(level)


def assert_one_line(outcome: Outcome, code: int, fragment: str) -> None:
    """Exit ``code``, and stderr is one line holding ``fragment`` and no traceback."""
    assert outcome.code == code, outcome
    assert outcome.err.count("\n") == 1 and outcome.err.endswith("\n"), outcome.err
    assert fragment in outcome.err, outcome.err
    assert "Traceback" not in outcome.err


WRONG_USAGE = [
    (["stats", "--redis-url", "notaurl"], "scheduler stats: error: argument --redis-url:"),
    (["stats", "--redis-url", "redis://127.0.0.1:notaport/0"], "argument --redis-url: Port"),
    (["stats", "--redis-url", "redis://127.0.0.1:6379/0?cluster=maybe"], "takes yes or no"),
    (["inspect", "x", "--queue", "a{b}"], "scheduler inspect: error: argument --queue:"),
    (["stats", "--prefix", "a{b"], "scheduler stats: error: argument --prefix: invalid key"),
    (["enqueue", "t", "--delay-ms", "-5"], "argument --delay-ms: must be an integer in 0.."),
    (["enqueue", "t", "--priority", "5000"], "must be an integer in -1000..1000, not 5000"),
    (["enqueue", "t", "--max-attempts", "0"], "argument --max-attempts: must be an integer"),
    (["enqueue", "t", "--id", "a b"], "argument --id: invalid job id 'a b'"),
    (["enqueue", "t", "--args", "{"], "scheduler enqueue: error: argument --args: not valid JSON"),
    (["enqueue", "t", "--kwargs", "[]"], "argument --kwargs: must be a JSON object"),
    (["dead", "list", "--queue", "q", "--limit", "-5"], "scheduler dead list: error: argument"),
    (["dead", "purge", "--queue", "q", *[f"j{i}" for i in range(1001)]], "at most 1000 JOB_IDs"),
    (["stats", "--interval", "nan"], "argument --interval: must be a number of seconds above 0"),
    (["worker", "x:app", "--concurrency", "0"], "scheduler worker: error: argument --concur"),
    (["worker", "x:app", "--grace-s", "inf"], "argument --grace-s: must be a number of seconds"),
    (["worker", "no_such_module:app"], "scheduler worker: error: cannot import 'no_such_module'"),
    (["demo", "--jobs", "0"], "scheduler demo: error: argument --jobs: must be an integer"),
    (["nope"], "scheduler: error: argument command: invalid choice: 'nope'"),
    (["inspect", "j1"], "scheduler inspect: error: the following arguments are required"),
    (["stats", "--bad"], "scheduler stats: error: unrecognized arguments: --bad"),
]


@pytest.mark.parametrize(
    ("argv", "fragment"), WRONG_USAGE, ids=[" ".join(argv)[:50] for argv, _ in WRONG_USAGE]
)
def test_wrong_usage_is_one_line_and_exit_2(
    run_main: Callable[..., Outcome], argv: list[str], fragment: str
) -> None:
    assert_one_line(run_main(*argv), 2, fragment)


def test_an_unreachable_redis_is_one_line_and_exit_1(run_main: Callable[..., Outcome]) -> None:
    url = f"redis://user:secret@127.0.0.1:{free_port()}/0"
    outcome = run_main("stats", "--redis-url", url)
    assert_one_line(outcome, 1, "scheduler stats: cannot reach Redis at redis://user:***@")
    assert "secret" not in outcome.err


def test_job_errors_are_one_line_and_exit_1(run_main: Callable[..., Outcome], queue: Queue) -> None:
    assert_one_line(
        run_main("inspect", "nope", "--queue", QUEUE), 1, "scheduler inspect: JobNotFound: "
    )
    queue.enqueue("work", id="c2")
    queue.claim("test-worker")
    assert_one_line(run_main("cancel", "c2", "--queue", QUEUE), 1, "InvalidState: ")
    refused = run_main("dead", "requeue", "--queue", QUEUE, "c2")
    assert_one_line(refused, 1, "scheduler dead requeue: 1 job(s) refused")
    assert "c2 bad_state" in refused.out


def test_a_full_server_is_one_line_and_exit_1(
    run_main: Callable[..., Outcome], r: redis.Redis
) -> None:
    before = r.config_get("maxmemory")["maxmemory"]
    r.config_set("maxmemory", 1)  # below what the server uses already: every write refused
    try:
        outcome = run_main("enqueue", "t", "--queue", QUEUE)
    finally:
        r.config_set("maxmemory", before)
    assert_one_line(outcome, 1, "scheduler enqueue: ServerFull: Redis is out of memory")


def test_a_redis_error_is_one_line_and_exit_1(
    run_main: Callable[..., Outcome], queue: Queue, r: redis.Redis
) -> None:
    r.set(queue.ops.keys.key("dead"), "not a sorted set")
    assert_one_line(run_main("dead", "list", "--queue", QUEUE), 1, "ResponseError: WRONGTYPE")


def fail_unexpectedly(*args: Any, **kwargs: Any) -> Any:
    """Stands in for a function of the command line that has a bug."""
    raise AttributeError("a bug\nover two lines")


def test_an_unexpected_error_is_one_line_and_exit_1(
    run_main: Callable[..., Outcome], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_cli_stats, "discover_queues", fail_unexpectedly)
    assert_one_line(
        run_main("stats"),
        1,
        "scheduler stats: internal error: AttributeError: a bug over two lines "
        "(run with --debug for the traceback)",
    )
    monkeypatch.setattr("scheduler.__main__.demo", fail_unexpectedly)
    assert_one_line(run_main("demo"), 1, "scheduler demo: internal error: AttributeError")


def test_debug_adds_the_traceback(
    run_main: Callable[..., Outcome], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_cli_stats, "discover_queues", fail_unexpectedly)
    outcome = run_main("stats", "--debug")
    assert outcome.code == 1
    assert outcome.err.startswith("Traceback (most recent call last):")
    assert outcome.err.splitlines()[-1] == (
        "scheduler stats: internal error: AttributeError: a bug over two lines"
    )
    missing = run_main("inspect", "nope", "--queue", QUEUE, "--debug")
    assert missing.code == 1 and "Traceback" in missing.err and "JobNotFound" in missing.err
    monkeypatch.setattr("scheduler.__main__.demo", fail_unexpectedly)
    demo = run_main("demo", "--debug")
    assert demo.code == 1 and "Traceback" in demo.err


def test_ctrl_c_in_a_command_is_one_line_and_exit_130(
    run_main: Callable[..., Outcome], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(_cli_jobs, "connect", interrupted)
    assert_one_line(
        run_main("inspect", "j1", "--queue", QUEUE), 130, "scheduler inspect: interrupted"
    )


def start_worker(background: Callable[..., Background], app: str, *args: str) -> Background:
    """A worker on the ``cli`` queue (short idle waits, so a stop is quick)."""
    return background("worker", app, "--queue", QUEUE, "--max-idle-s", "0.5", *args)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "top")
def test_help_of_every_command_exits_0(redis_url: str, command: list[str]) -> None:
    result = cli(redis_url, *command, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: scheduler" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["enqueue", "add", "--args", "{"],
        ["enqueue", "add", "--kwargs", "[]"],
        ["nope"],
        ["stats", "--bad"],
        ["worker", "no_such_module:app"],
        ["inspect", "j1"],
    ],
)
def test_wrong_usage_exits_2(redis_url: str, args: list[str]) -> None:
    result = cli(redis_url, *args)
    assert result.returncode == 2, result.stderr
    assert "error" in result.stderr


def test_an_unreachable_redis_exits_1(redis_url: str) -> None:
    result = cli(redis_url, "stats", "--redis-url", "redis://127.0.0.1:1/0")
    assert result.returncode == 1
    assert "cannot reach Redis" in result.stderr


def test_enqueue_then_stats_shows_it_waiting(redis_url: str, queue: Queue) -> None:
    args = ["enqueue", "add", "--args", "[1, 2]", "--queue", QUEUE, "--id", "j1"]
    first, again = cli(redis_url, *args), cli(redis_url, *args)
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    assert first.stdout.strip() == "j1 created (waiting)"
    assert again.stdout.strip() == "j1 exists already (waiting)"
    report = cli_json(redis_url, "stats", "--queue", QUEUE)["queues"][QUEUE]
    assert report["counts"] == {s.value: int(s is State.WAITING) for s in State}
    assert report["throughput_per_s"] is None
    assert report["oldest_waiting_age_s"] >= 0
    assert cli_json(redis_url, "stats")["queues"].keys() == {QUEUE}  # found by SCAN
    text = cli(redis_url, "stats").stdout
    assert "queue cli" in text and "waiting 1" in text and "throughput: n/a" in text


def test_enqueue_options_reach_the_job(redis_url: str, queue: Queue) -> None:
    enqueued = cli_json(
        redis_url,
        "enqueue",
        "add",
        "--kwargs",
        '{"a": 1, "b": 2}',
        "--queue",
        QUEUE,
        "--delay-ms",
        "60000",
        "--priority",
        "5",
        "--max-attempts",
        "7",
    )
    assert enqueued["created"] is True and enqueued["state"] == "delayed"
    info = queue.inspect(enqueued["id"])
    assert info.payload == {"task": "add", "args": [], "kwargs": {"a": 1, "b": 2}}
    assert (info.priority, info.max_attempts) == (5, 7)


def test_inspect_shows_the_job_fields(redis_url: str, queue: Queue) -> None:
    queue.enqueue({"task": "add", "args": [1, 2], "kwargs": {}}, id="j1")
    info = cli_json(redis_url, "inspect", "j1", "--queue", QUEUE)
    assert info["id"] == "j1" and info["state"] == "waiting" and info["attempt"] == 0
    assert info["payload"] == {"task": "add", "args": [1, 2], "kwargs": {}}
    assert info["options"]["max_attempts"] == 3
    text = cli(redis_url, "inspect", "j1", "--queue", QUEUE).stdout
    assert "state: waiting" in text and "payload: {'task': 'add'" in text
    missing = cli(redis_url, "inspect", "nope", "--queue", QUEUE)
    assert missing.returncode == 1 and "JobNotFound" in missing.stderr


def test_a_worker_completes_jobs_and_stops_on_sigterm(
    queue: Queue, background: Callable[..., Background]
) -> None:
    ids = [queue.enqueue({"task": "add", "args": [n, n], "kwargs": {}}).id for n in range(5)]
    worker = start_worker(background, "cli_tasks:app", "--grace-s", "5")
    wait_for(lambda: all(state_of(queue, i) is State.COMPLETED for i in ids), what="completion")
    assert [queue.inspect(i).result for i in ids] == [0, 2, 4, 6, 8]
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=5) == 0
    assert "SIGTERM: stopping" in worker.err and " INFO scheduler.worker: worker " in worker.err


def test_sigterm_hands_a_long_job_back_after_the_grace(
    queue: Queue, background: Callable[..., Background]
) -> None:
    queue.enqueue({"task": "stubborn", "args": [60], "kwargs": {}}, id="long")
    worker = start_worker(background, "cli_tasks:app", "--grace-s", "0.3")
    wait_for(lambda: state_of(queue, "long") is State.ACTIVE, what="the job to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=8) == 0  # the grace, then the cancel-ignoring thread is left
    info = queue.inspect("long")
    # Its handler had begun, and the hand-back said so: its attempt stays counted.
    assert (info.state, info.outcome.value, info.attempt) == (State.WAITING, "returned", 1)
    assert "handed back 1 unfinished job(s)" in worker.err


def test_a_second_signal_exits_at_once(queue: Queue, background: Callable[..., Background]) -> None:
    queue.enqueue({"task": "patient", "args": [60], "kwargs": {}}, id="long")
    worker = start_worker(background, "cli_tasks:app", "--grace-s", "60")
    wait_for(lambda: state_of(queue, "long") is State.ACTIVE, what="the job to start")
    worker.signal(signal.SIGTERM)
    wait_for(lambda: "SIGTERM: stopping" in worker.err, what="the first signal to be logged")
    worker.signal(signal.SIGINT)
    assert worker.wait(timeout=5) == 1
    assert "SIGINT again: exiting at once" in worker.err
    assert state_of(queue, "long") is State.ACTIVE  # its lease expires on its own


def test_an_app_of_coroutines_runs_on_the_async_worker(
    queue: Queue, background: Callable[..., Background]
) -> None:
    queue.enqueue({"task": "add", "args": [2, 3], "kwargs": {}}, id="a1")
    worker = start_worker(background, "cli_async_tasks:app")
    wait_for(lambda: state_of(queue, "a1") is State.COMPLETED, what="completion")
    assert queue.inspect("a1").result == [5, "a1"]  # current_job() works in a coroutine task
    worker.signal(signal.SIGINT)
    assert worker.wait(timeout=5) == 0


def test_one_worker_process_serves_several_queues(
    make_queue: Callable[..., Queue], background: Callable[..., Background]
) -> None:
    queues = [make_queue(QUEUE), make_queue("cli2")]
    for q in queues:
        q.enqueue({"task": "add", "args": [1, 1], "kwargs": {}}, id="m1")
    worker = start_worker(background, "cli_tasks:app", "--queue", "cli2")
    wait_for(lambda: all(state_of(q, "m1") is State.COMPLETED for q in queues), what="completion")
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=5) == 0


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("cli_mixed_tasks:app", "mixes coroutine and plain tasks"),
        ("cli_tasks:add", "not a TaskRegistry"),
        ("cli_tasks:nothing", "has no 'nothing'"),
    ],
)
def test_a_worker_refuses_an_app_it_cannot_run(
    background: Callable[..., Background], app: str, message: str
) -> None:
    worker = start_worker(background, app)
    assert worker.wait(timeout=10) == 2
    assert message in worker.err


def make_dead(queue: Queue, *ids: str) -> None:
    """Put jobs ``ids`` in the dead letters, each with the error ``boom <id>``."""
    for job_id in ids:
        queue.enqueue("work", id=job_id, options=JobOptions(max_attempts=1))
        job = queue.claim("test-worker").jobs[0]
        queue.fail(job, f"boom {job.id}", retryable=False)


def test_dead_list_requeue_and_purge(redis_url: str, queue: Queue) -> None:
    make_dead(queue, "d1", "d2", "d3")
    listed = cli_json(redis_url, "dead", "list", "--queue", QUEUE)["dead"]
    assert [(job["id"], job["error"]) for job in listed] == [
        ("d1", "boom d1"),
        ("d2", "boom d2"),
        ("d3", "boom d3"),
    ]
    assert len(cli_json(redis_url, "dead", "list", "--queue", QUEUE, "--limit", "2")["dead"]) == 2
    assert "d2  attempt 1/1" in cli(redis_url, "dead", "list", "--queue", QUEUE).stdout
    requeued = cli(redis_url, "dead", "requeue", "--queue", QUEUE, "d2")
    assert requeued.returncode == 0 and "d2 requeued" in requeued.stdout
    assert state_of(queue, "d2") is State.WAITING
    purged = cli(redis_url, "dead", "purge", "--queue", QUEUE, "--limit", "1")
    assert purged.returncode == 0 and "d1 purged" in purged.stdout
    assert state_of(queue, "d1") is None and state_of(queue, "d3") is State.DEAD
    refused = cli(redis_url, "dead", "requeue", "--queue", QUEUE, "d2")  # waiting, not dead
    assert refused.returncode == 1 and "d2 bad_state" in refused.stdout


def test_cancel(redis_url: str, queue: Queue) -> None:
    queue.enqueue("work", id="c1")
    first = cli(redis_url, "cancel", "c1", "--queue", QUEUE)
    assert first.returncode == 0 and first.stdout.strip() == "c1 cancelled"
    assert state_of(queue, "c1") is State.CANCELLED
    again = cli(redis_url, "cancel", "c1", "--queue", QUEUE)
    assert again.returncode == 0 and "was cancelled already" in again.stdout
    queue.enqueue("work", id="c2")
    queue.claim("test-worker")
    active = cli(redis_url, "cancel", "c2", "--queue", QUEUE)
    assert active.returncode == 1 and "InvalidState" in active.stderr


def test_doctor_reports_persistence_off(redis_url: str, r: redis.Redis) -> None:
    result = cli(redis_url, "doctor")
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert "server:           Redis " in out and "maxmemory-policy: noeviction" in out
    assert "persistence:      off" in out and "scripts load:     yes" in out
    assert "median of 20 PINGs" in out
    assert "WARNING: persistence is off" in out and "problem(s) to fix" in out


def test_stats_watch_redraws_until_ctrl_c(
    queue: Queue, background: Callable[..., Background]
) -> None:
    queue.enqueue("work", id="w1")
    watcher = background("stats", "--queue", QUEUE, "--watch", "--interval", "0.1")
    wait_for(lambda: "jobs/s" in watcher.out, what="a second frame with throughput")
    watcher.signal(signal.SIGINT)
    assert watcher.wait(timeout=5) == 0
    frames = watcher.out.split("\x1b[H\x1b[2J")
    assert len(frames) >= 3 and "throughput: n/a" in frames[1]
    assert any("throughput: 0.0 jobs/s" in frame for frame in frames[2:])


def worker_children(worker: Background) -> set[int]:
    """The pids of the worker processes a ``--processes`` worker runs (its spawned children;
    multiprocessing's resource tracker is left out)."""
    found = subprocess.run(
        ["pgrep", "-P", str(worker.process.pid), "-f", "spawn_main"],
        capture_output=True,
        text=True,
        check=False,
    )
    return {int(pid) for pid in found.stdout.split()}


def enqueue_adds(queue: Queue, first: int, count: int) -> list[str]:
    """Enqueue ``count`` ``add`` jobs; their ids."""
    return [
        queue.enqueue({"task": "add", "args": [n, 1], "kwargs": {}}).id
        for n in range(first, first + count)
    ]


def all_completed(queue: Queue, ids: list[str]) -> Callable[[], bool]:
    """A condition: every job of ``ids`` is completed."""
    return lambda: all(state_of(queue, i) is State.COMPLETED for i in ids)


def test_worker_processes_are_restarted_and_stop_on_sigterm(
    queue: Queue, background: Callable[..., Background]
) -> None:
    worker = start_worker(background, "cli_tasks:app", "--processes", "2", "--grace-s", "5")
    first = enqueue_adds(queue, 0, 20)
    wait_for(all_completed(queue, first), what="the first jobs")
    wait_for(lambda: len(worker_children(worker)) == 2, what="two worker processes")
    before = worker_children(worker)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    wait_for(
        lambda: (
            len(worker_children(worker) - before) == 1 and victim not in worker_children(worker)
        ),
        what="a restarted worker process",
    )
    wait_for(lambda: worker.err.count("started on queue cli") == 3, what="the restart to run")
    rest = enqueue_adds(queue, 20, 20)
    wait_for(all_completed(queue, rest), what="the jobs after the restart")
    assert [queue.inspect(i).result for i in rest] == [n + 1 for n in range(20, 40)]
    children = worker_children(worker)
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=5 + 2 + 5) == 0
    assert worker_children(worker) == set()
    assert not any(os.path.exists(f"/proc/{pid}") for pid in children)
    assert f"(pid {victim}) died with exit code -9" in worker.err
    assert len(re.findall(r"INFO scheduler.worker: worker \S+ stopped", worker.err)) == 2


def test_a_second_signal_kills_the_worker_processes(
    queue: Queue, background: Callable[..., Background]
) -> None:
    queue.enqueue({"task": "patient", "args": [60], "kwargs": {}}, id="long")
    worker = start_worker(background, "cli_tasks:app", "--processes", "2", "--grace-s", "60")
    wait_for(lambda: state_of(queue, "long") is State.ACTIVE, what="the job to start")
    children = worker_children(worker)
    worker.signal(signal.SIGINT)
    wait_for(lambda: "SIGINT: stopping" in worker.err, what="the first signal to be logged")
    worker.signal(signal.SIGINT)
    assert worker.wait(timeout=5) == 1
    assert "SIGINT again: exiting at once" in worker.err
    assert not any(os.path.exists(f"/proc/{pid}") for pid in children)
