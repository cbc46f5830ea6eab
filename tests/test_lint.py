"""The code stays lint-clean and strictly typed: ``ruff check`` over the code and the tests, and
``mypy --strict`` over the package, run as subprocesses from the repository root. Skipped with
the reason when ruff or mypy is not installed. No Redis.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
RUFF_TARGETS = ("scheduler", "tests", "benchmarks")


def run_tool(module: str, *args: str) -> None:
    """Run ``python -m <module> <args>`` from the repository root; fail with its output unless
    it exits 0. Skip when the tool is not installed in this interpreter."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install -e '.[dev]')")
    command = [sys.executable, "-m", module, *args]
    done = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    exit_code = done.returncode
    assert exit_code == 0, (
        f"{' '.join(command[1:])} exited {exit_code}:\n{done.stdout}\n{done.stderr}"
    )


def test_ruff_check_is_clean() -> None:
    targets = [target for target in RUFF_TARGETS if (REPO_ROOT / target).exists()]
    run_tool("ruff", "check", *targets)


def test_mypy_strict_is_clean() -> None:
    run_tool("mypy", "--strict", "scheduler")
