"""``python -m scheduler demo``, as a user runs it: on a throwaway Redis it starts and stops
itself, and against a given Redis; the bulk run kills a worker process, which is restarted, and
every job still completes exactly once; Ctrl-C stops everything it started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    return subprocess.run(
        [sys.executable, "-m", "scheduler", "demo", "--jobs", "600", "--processes", "2", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_demo_output(out: str) -> None:
    for task in ("A", "B", "C"):
        assert f"task {task}: completed by worker-" in out
    assert "worker-1" in out and "worker-2" in out
    assert "3 of 3 tasks completed exactly once" in out
    assert "jobs done: 600 of 600" in out
    assert "killed worker process" in out and "worker processes restarted: 1" in out
    assert re.search(r"jobs recovered from the killed worker \(.*\): \d+\n", out)
    assert re.search(r"throughput: [\d,]+ jobs/s", out)
    assert "every job completed exactly once: yes (completed 600 == jobs 600, dead 0)" in out
    assert "progress: 100% (600/600)" in out  # not a terminal: a line every 10%


def test_the_demo_starts_and_stops_its_own_redis() -> None:
    result = run_demo()
    assert result.returncode == 0, result.stderr
    assert "started a throwaway redis-server" in result.stdout
    assert "stopped the throwaway redis-server" in result.stdout
    assert_demo_output(result.stdout)


def test_the_demo_uses_a_given_redis(redis_url: str) -> None:
    result = run_demo("--redis-url", redis_url)
    assert result.returncode == 0, result.stderr
    assert "throwaway" not in result.stdout
    assert_demo_output(result.stdout)


def group_is_gone(group: int) -> bool:
    """True when no process of process group ``group`` is left."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return True
    return False


def test_ctrl_c_stops_the_worker_processes_and_the_redis(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    out_path = tmp_path / "out.txt"
    with out_path.open("w") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "scheduler", "demo", "--jobs", "20000", "--processes", "2"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )
    try:
        deadline = time.monotonic() + 60
        while "progress: " not in out_path.read_text():  # 10% or more: the first line shown
            assert demo.poll() is None and time.monotonic() < deadline, out_path.read_text()
            time.sleep(0.05)
        os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C sends: every process of the group
        assert demo.wait(timeout=20) == 130
        deadline = time.monotonic() + 10
        while not group_is_gone(demo.pid):
            assert time.monotonic() < deadline, "a process of the demo outlived it"
            time.sleep(0.05)
        text = out_path.read_text()
        assert "interrupted" in text and "stopped the throwaway redis-server" in text
        assert "Traceback" not in text
    finally:
        if not group_is_gone(demo.pid):
            os.killpg(demo.pid, signal.SIGKILL)
