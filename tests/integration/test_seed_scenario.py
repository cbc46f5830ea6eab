"""The seed scenario, through its runnable example (``examples/seed_scenario.py``): a manager
creates tasks A, B and C; two workers in threads take them; the monitor shows which worker runs
which task while both hold one; all three complete exactly once. Every wait in the scenario is
bounded (each thread is joined with a timeout)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis

from scheduler import State
from scheduler.demo import DEMO_PREFIX, TASKS

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "seed_scenario.py"
WORKERS = {"worker-1", "worker-2"}


def load_example() -> ModuleType:
    """Import ``examples/seed_scenario.py`` from its path (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location("seed_scenario_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def seed_run(r: redis.Redis) -> dict[str, Any]:
    """What one run of the seed scenario saw, on a clean database."""
    result: dict[str, Any] = load_example().run(r)
    return result


def test_the_monitor_shows_both_workers_each_running_a_task(seed_run: dict[str, Any]) -> None:
    first = seed_run["snapshots"][0]
    assert len(first) == 2
    assert {row["worker"] for row in first} == WORKERS
    assert len({row["task"] for row in first}) == 2


def test_the_monitor_shows_every_task_once_on_its_first_attempt_with_a_live_lease(
    seed_run: dict[str, Any],
) -> None:
    rows = [row for snapshot in seed_run["snapshots"] for row in snapshot]
    assert sorted(row["task"] for row in rows) == list(TASKS)
    assert all(row["worker"] in WORKERS for row in rows)
    assert all(row["attempt"] == 1 and row["lease_left_s"] > 0 for row in rows)


def test_every_task_completes_exactly_once(seed_run: dict[str, Any]) -> None:
    assert seed_run["accepted"] == {task: 1 for task in TASKS}
    assert seed_run["final_states"] == {task: State.COMPLETED for task in TASKS}
    assert seed_run["final_attempts"] == {task: 1 for task in TASKS}
    assert set(seed_run["completed_by"]) == set(TASKS)
    assert set(seed_run["completed_by"].values()) <= WORKERS


def test_the_scenario_can_run_again_on_the_same_queue(r: redis.Redis) -> None:
    example = load_example()
    example.run(r, "again")
    second = example.run(r, "again")
    assert second["accepted"] == {task: 1 for task in TASKS}
    assert r.exists(f"{DEMO_PREFIX}:{{again}}:meta")
