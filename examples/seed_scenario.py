"""The seed scenario, runnable: a manager creates tasks A, B and C, two workers in threads take
them, the monitor shows which worker runs which task, and all three complete exactly once.

    python examples/seed_scenario.py [redis-url]

With no URL it uses ``$REDIS_URL``, else a throwaway local redis-server that it stops at the end.
The scenario itself lives in scheduler/demo.py (one implementation, also run by
``python -m scheduler demo`` and the tests); this file is a thin wrapper around it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict
from typing import Any

import redis

from scheduler._local_redis import LocalRedis
from scheduler.demo import format_seed_report, run_seed_scenario


def run(redis_client: redis.Redis, queue_name: str = "seed") -> dict[str, Any]:
    """Run the seed scenario on ``redis_client`` and return what happened, as plain data:

    * ``snapshots``: what the monitor showed, each a list of rows
      ``{"task", "worker", "attempt", "lease_left_s"}`` (the first: both workers holding a task);
    * ``completed_by``: task -> the worker whose completion was accepted;
    * ``accepted``: task -> how many completions Redis accepted (1 each);
    * ``final_states`` and ``final_attempts``: task -> its state and attempt in the end.
    """
    report = run_seed_scenario(redis_client, queue_name)
    return {
        "snapshots": [[asdict(row) for row in rows] for rows in report.snapshots],
        "completed_by": dict(report.completed_by),
        "accepted": dict(report.accepted),
        "final_states": dict(report.final_states),
        "final_attempts": dict(report.final_attempts),
    }


def main(url: str | None) -> int:
    """Run the scenario against ``url`` (or a throwaway Redis) and print what the monitor saw."""
    if url is not None:
        client = redis.Redis.from_url(url)
        try:
            print(format_seed_report(run_seed_scenario(client)))
        finally:
            client.close()
        return 0
    with LocalRedis() as server:
        return main(server.url)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("REDIS_URL") or None))
