"""``python -m scheduler demo``, as a user runs it: on a throwaway Redis it starts and stops
itself, and against a given Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    return subprocess.run(
        [sys.executable, "-m", "scheduler", "demo", "--jobs", "500", *args],
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
    assert "500 jobs claimed, leased and acknowledged" in out


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
