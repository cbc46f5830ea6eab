"""The seed scenario: a manager creates tasks A, B and C; two workers in threads take them; the
monitor shows which worker runs which task; all three complete exactly once."""

from __future__ import annotations

import redis

from scheduler import State
from scheduler.demo import TASKS, run_seed_scenario


def test_two_workers_share_three_tasks_and_each_completes_exactly_once(r: redis.Redis) -> None:
    report = run_seed_scenario(r)

    first = report.snapshots[0]
    assert len(first) == 2, "the monitor saw both workers running a task at once"
    assert {row.worker for row in first} == {"worker-1", "worker-2"}
    shown = [row.task for rows in report.snapshots for row in rows]
    assert sorted(shown) == list(TASKS), "the monitor showed every task exactly once"
    assert all(
        row.attempt == 1 and row.lease_left_s > 0 for rows in report.snapshots for row in rows
    )

    assert report.accepted == {task: 1 for task in TASKS}
    assert report.final_states == {task: State.COMPLETED for task in TASKS}
    assert set(report.completed_by.values()) <= {"worker-1", "worker-2"}
