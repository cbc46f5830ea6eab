"""``stats``: counts per state, active jobs, the oldest waiting job and throughput, once, as
JSON, or redrawn like ``top`` until Ctrl-C."""

from __future__ import annotations

import argparse
import re
import time
from dataclasses import dataclass
from typing import Any

from ._cli_common import EXIT_OK, connect, open_queue, print_json, queue_name, seconds_in
from ._models import QueueStats
from ._status import State
from .connection import SyncClient

Subparsers = Any  # argparse's _SubParsersAction, private in typeshed
CLEAR_SCREEN = "\x1b[H\x1b[2J"
DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The stats of one queue, and when (monotonic seconds) they were read."""

    stats: QueueStats
    taken_s: float


def add_stats_command(commands: Subparsers, common: argparse.ArgumentParser) -> None:
    """Register ``stats`` on ``commands``."""
    parser = commands.add_parser(
        "stats",
        parents=[common],
        help="counts per state, active jobs, oldest waiting job, throughput",
        description="Counts per state per queue, the active jobs with their worker and lease "
        "seconds left, the oldest waiting job's age and throughput (completed jobs per second "
        "between two snapshots; n/a on the first). Without --queue, every queue found by SCAN.",
    )
    parser.add_argument(
        "--queue", action="append", type=queue_name, default=[], help="a queue (repeatable)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per snapshot")
    parser.add_argument("--watch", action="store_true", help="redraw until Ctrl-C")
    parser.add_argument(
        "--interval",
        type=seconds_in(0, DAY_S, low_open=True),
        default=2.0,
        help="seconds between redraws",
    )
    parser.set_defaults(run=run_stats)


def discover_queues(client: SyncClient, prefix: str) -> list[str]:
    """The queues under ``prefix`` that have a ``meta`` hash, found with SCAN."""
    pattern = re.compile(re.escape(prefix) + r":\{(.+)\}:meta")
    match = prefix.replace("*", r"\*").replace("?", r"\?").replace("[", r"\[") + ":{*}:meta"
    names = set()
    for key in client.scan_iter(match=match, count=1000):
        found = pattern.fullmatch(key.decode(errors="replace"))
        if found:
            names.add(found.group(1))
    return sorted(names)


def throughput(previous: Snapshot | None, current: Snapshot) -> float | None:
    """Completed jobs per second between two snapshots (None on the first). Trimming of old
    records can lower the completed count; that reads as 0, never as negative."""
    if previous is None:
        return None
    elapsed = current.taken_s - previous.taken_s
    done = current.stats.counts[State.COMPLETED] - previous.stats.counts[State.COMPLETED]
    return max(0, done) / elapsed if elapsed > 0 else None


def queue_report(snapshot: Snapshot, rate: float | None) -> dict[str, Any]:
    """One queue's stats as plain data."""
    stats = snapshot.stats
    return {
        "counts": {state.value: stats.counts[state] for state in State},
        "oldest_waiting_age_s": (
            None if stats.oldest_waiting_age_ms is None else stats.oldest_waiting_age_ms / 1000
        ),
        "throughput_per_s": rate,
        "running": stats.running,
        "leased_not_started": stats.counts[State.ACTIVE] - stats.running,
        "stubs": stats.stubs,
        "quarantined": stats.quarantined,
        "unreadable_by_this_version": stats.unreadable,
        "active": [
            {
                "id": job.id,
                "worker": job.worker,
                "attempt": job.attempt,
                "running": job.is_running,
                "lease_left_s": (job.deadline_ms - stats.now_ms) / 1000,
            }
            for job in stats.active
        ],
    }


def format_report(name: str, report: dict[str, Any]) -> str:
    """One queue's stats as text."""
    counts = "  ".join(f"{state} {count}" for state, count in report["counts"].items())
    age = report["oldest_waiting_age_s"]
    rate = report["throughput_per_s"]
    lines = [
        f"queue {name}",
        f"  {counts}",
        f"  of the active: running {report['running']}"
        f"  leased, not started {report['leased_not_started']}",
        f"  oldest waiting: {'-' if age is None else f'{age:.1f}s'}"
        f"  throughput: {'n/a' if rate is None else f'{rate:.1f} jobs/s'}",
    ]
    set_aside = (report["stubs"], report["quarantined"], report["unreadable_by_this_version"])
    if any(set_aside):
        lines.append(
            f"  stubs {set_aside[0]}  quarantined {set_aside[1]}"
            f"  unreadable by this version {set_aside[2]}"
        )
    for job in report["active"]:
        kind = "running" if job["running"] else "leased"
        lines.append(
            f"  {kind} {job['id']}  worker {job['worker']}  attempt {job['attempt']}"
            f"  lease left {job['lease_left_s']:.1f}s"
        )
    return "\n".join(lines)


class StatsView:
    """Reads the stats of the queues asked for (or found) and remembers the last snapshot of
    each, for throughput."""

    def __init__(self, args: argparse.Namespace, client: SyncClient) -> None:
        self.args = args
        self.client = client
        self.previous: dict[str, Snapshot] = {}

    def reports(self) -> dict[str, dict[str, Any]]:
        """The report of every queue now."""
        names = self.args.queue or discover_queues(self.client, self.args.prefix)
        reports = {}
        for name in names:
            stats = open_queue(self.args, self.client, name).stats()
            current = Snapshot(stats, time.monotonic())
            reports[name] = queue_report(current, throughput(self.previous.get(name), current))
            self.previous[name] = current
        return reports

    def show(self, reports: dict[str, dict[str, Any]]) -> None:
        """Print the reports, as JSON or as text (clearing the screen first when watching)."""
        if self.args.json:
            print_json({"queues": reports})
            return
        text = "\n".join(format_report(name, r) for name, r in reports.items())
        header = time.strftime("%H:%M:%S") + f"  {len(reports)} queue(s)"
        prefix = CLEAR_SCREEN if self.args.watch else ""
        print(f"{prefix}{header}\n{text or 'no queues found'}", flush=True)


def run_stats(args: argparse.Namespace) -> int:
    """``stats``: once, or every ``--interval`` seconds until Ctrl-C with ``--watch``."""
    client = connect(args)
    view = StatsView(args, client)
    try:
        view.show(view.reports())
        while args.watch:
            time.sleep(args.interval)  # the pace of a display, not a synchronisation
            view.show(view.reports())
    except KeyboardInterrupt:
        pass
    finally:
        client.close()
    return EXIT_OK
