"""Run every fault scenario and print the table of the README's section "Guarantees and how they
are tested":

    .venv/bin/python -m tests.faults.report            # the sizes of the default test run
    .venv/bin/python -m tests.faults.report --large    # the sizes of the slow tests
    .venv/bin/python -m tests.faults.report --only kill --size 600

Each scenario starts its own ``redis-server`` on a free loopback port (and worker processes for
the kill, stop, poison, unencodable and sigterm faults) and stops them when done. Exits 1 if any
run broke a guarantee.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from types import ModuleType

from tests.faults import (
    test_frozen_server,
    test_killed_worker,
    test_lost_replies,
    test_memory_pressure,
    test_poison_payloads,
    test_redis_restart,
    test_restart_loop,
    test_stopped_worker,
    test_unencodable_results,
    test_unreadable_records,
)
from tests.faults.harness import Outcome

SCENARIOS: dict[str, ModuleType] = {
    "stop": test_stopped_worker,
    "kill": test_killed_worker,
    "restart": test_redis_restart,
    "proxy": test_lost_replies,
    "freeze": test_frozen_server,
    "memory": test_memory_pressure,
    "poison": test_poison_payloads,
    "unencodable": test_unencodable_results,
    "sigterm": test_restart_loop,
    "unreadable": test_unreadable_records,
}
"""Each fault's short name and the test module holding its scenario and sizes."""

HEADER = (
    "| fault | operations | jobs | lost | unexpected | duplicate executions "
    "| max accepted completions per job | stale completions refused "
    "| dead before max attempts | worst recovery (bound) | reproduce |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def row(outcome: Outcome) -> str:
    """One table row."""
    r = outcome.report
    worst = r.worst_recovery_ms
    recovery = "n/a" if worst is None else f"{worst / 1000:.2f} s ({(r.bound_ms or 0) / 1000:g} s)"
    cells = [
        r.name, r.operations, r.jobs, len(r.lost), len(r.unexpected), r.duplicates,
        r.max_accepted, r.stale_refused, len(r.early_dead), recovery, f"`{outcome.command}`",
    ]  # fmt: skip
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def main(argv: list[str] | None = None) -> int:
    """Run the chosen scenarios, print the table and the notes; 1 if any broke a guarantee."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--large", action="store_true", help="the slow tests' sizes")
    parser.add_argument("--only", action="append", choices=sorted(SCENARIOS), default=[])
    parser.add_argument("--size", type=int, default=None, help="one size for every run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)
    rows, notes, broken = [], [], False
    for name in args.only or list(SCENARIOS):
        module = SCENARIOS[name]
        size = args.size or (module.SLOW_SIZE if args.large else module.DEFAULT_SIZE)
        started = time.monotonic()
        outcome: Outcome = module.scenario(size)
        took = time.monotonic() - started
        rows.append(row(outcome))
        problems = outcome.report.problems()
        broken = broken or bool(problems)
        notes.append(
            f"- {name} (size {size}, {took:.1f} s): {outcome.notes}; "
            f"unknown outcomes {outcome.report.unknown}; problems: {problems or 'none'}"
        )
        print(f"{name}: done in {took:.1f} s", file=sys.stderr, flush=True)
    print(HEADER)
    print("\n".join(rows))
    print()
    print("\n".join(notes))
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
