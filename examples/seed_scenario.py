"""The seed scenario, runnable: a manager creates tasks A, B and C, two workers in threads take
them, the monitor shows which worker runs which task, and all three complete exactly once.

    python examples/seed_scenario.py [redis-url]

Without a URL it starts a throwaway local redis-server. The scenario itself lives in
scheduler/demo.py (one implementation, also run by ``python -m scheduler demo`` and the tests).
"""

from __future__ import annotations

import sys

import redis

from scheduler.__main__ import print_seed_report
from scheduler._local_redis import LocalRedis
from scheduler.demo import run_seed_scenario


def main(url: str | None) -> int:
    """Run the scenario against ``url`` (or a throwaway Redis) and print what the monitor saw."""
    if url is not None:
        print_seed_report(run_seed_scenario(redis.Redis.from_url(url)))
        return 0
    with LocalRedis() as server:
        print_seed_report(run_seed_scenario(redis.Redis.from_url(server.url)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
