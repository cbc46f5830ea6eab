"""The peer comparison: the same workload for this project and for RQ, Dramatiq, Celery, arq, SAQ,
Huey and BullMQ (Python), on the same throwaway Redis, in one run; reported as ratios.

    .venv/bin/pip install -e '.[peers]'      # the peers (an optional extra)
    .venv/bin/python -m benchmarks.peers [--jobs 20000] [--runs 3] [--peers rq,celery,...]
        [--json PATH] [--chart PNG] [--redis-url URL]

For each contender and run, on a flushed database:

1. **enqueue**: a fresh process enqueues N no-op jobs one at a time with the peer's own call
   (``enqueue``, ``send``, ``delay``, ``add``...); jobs per second of that loop.
2. **drain**: a fresh process runs one worker of the peer in its fastest documented non-forking
   mode (see ``benchmarks/_peers.py``). Every no-op task increments one Redis counter. This
   process polls the counter every 2 ms; the clock runs from the first poll that sees a
   completion to the one that sees N, so every contender's start-up is left out alike, and the
   rate is (N - count at the first poll) / elapsed.
3. **check**: the worker is stopped (or has exited, in burst mode); the counter must be exactly
   N (no job lost or run twice) and, where the peer keeps one, its own count of completed jobs
   must be N too.

Contenders run in turn within each run (order shuffled per run, same for all). Ratios are the
contender's figure over this project's (``scheduler-threads``) in the same run, then the median
over runs. A peer that is not installed, or that fails, is reported with the reason.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import redis

from . import _common
from ._peers import COUNTER, PEERS

REFERENCE = "scheduler-threads"
POLL_S = 0.002
DRAIN_TIMEOUT_S = 600.0
START_TIMEOUT_S = 120.0


class PeerFailed(RuntimeError):
    """A contender could not be run or gave a wrong count."""


def child_command(role: str, name: str, url: str, n: int = 0) -> list[str]:
    """The command line of a child running ``role`` for peer ``name``."""
    return [sys.executable, "-m", "benchmarks._peers", role, name, url, str(n)]


def run_child(role: str, name: str, url: str, n: int = 0) -> dict[str, Any]:
    """Run a child to its end; its JSON answer (its last line of output)."""
    done = subprocess.run(
        child_command(role, name, url, n),
        cwd=_common.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=DRAIN_TIMEOUT_S,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise PeerFailed(f"{role} exited {done.returncode}: {' | '.join(tail)}")
    answer: dict[str, Any] = json.loads(lines[-1])
    return answer


def end_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the worker child, then SIGKILL it if it is still there after 15 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def drain(name: str, url: str, jobs: int) -> tuple[float, str | None]:
    """Jobs per second drained by one worker process of ``name`` (see the module), and a
    remark when the no-op ran more often than there were jobs (a job run twice)."""
    client = _common.connect(url)
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        child_command("work", name, url), cwd=_common.REPO_ROOT, stdout=log, stderr=log
    )
    try:
        return _timed_drain(name, url, client, process, jobs)
    except PeerFailed as exc:
        end_process(process)
        log.seek(0)
        tail = log.read().decode(errors="replace").strip().splitlines()[-3:]
        raise PeerFailed(f"{exc}; worker output: {' | '.join(tail)}") from None
    finally:
        end_process(process)
        log.close()
        client.close()


def _timed_drain(
    name: str, url: str, client: redis.Redis, process: subprocess.Popen[bytes], jobs: int
) -> tuple[float, str | None]:
    try:
        deadline = time.perf_counter() + START_TIMEOUT_S
        first = 0
        while first == 0:
            if process.poll() not in (None, 0) or time.perf_counter() > deadline:
                raise PeerFailed(f"the worker did not start (exit code {process.poll()})")
            time.sleep(POLL_S)
            first = int(client.get(COUNTER) or 0)
        began = time.perf_counter()
        deadline = began + DRAIN_TIMEOUT_S
        while (done := int(client.get(COUNTER) or 0)) < jobs:
            if time.perf_counter() > deadline:
                raise PeerFailed(f"the drain timed out at {done} of {jobs}")
            time.sleep(POLL_S)
        elapsed = time.perf_counter() - began
        # Untimed: the peer's own count (where it has one) must reach N while the worker runs:
        # the counter moves inside the task, the peer's acknowledgement comes after it.
        own = run_child("count", name, url, jobs)["completed"]
        if own is not None and own != jobs:
            raise PeerFailed(f"its own count says {own} completed of {jobs}")
        before_stop = int(client.get(COUNTER) or 0)
    finally:
        end_process(process)
    final = int(client.get(COUNTER) or 0)
    if final < jobs:
        raise PeerFailed(f"the no-op ran {final} times for {jobs} jobs")
    if first >= jobs:
        raise PeerFailed("every job completed before the first poll: use more jobs")
    remark = None
    if final > jobs:
        remark = (
            f"the no-op ran {final} times for {jobs} jobs ({before_stop} before the worker "
            "was stopped): some jobs ran twice"
        )
    return (jobs - first) / elapsed, remark


def one(name: str, url: str, jobs: int) -> tuple[float, float, str | None]:
    """Enqueue and drain rates of contender ``name`` on a flushed database, and a remark."""
    client = _common.connect(url)
    client.flushall()
    client.close()
    enqueue_rate = jobs / run_child("enqueue", name, url, jobs)["seconds"]
    drain_rate, remark = drain(name, url, jobs)
    return enqueue_rate, drain_rate, remark


def run(url: str, given_url: bool, args: Any) -> dict[str, Any]:
    """Every contender once per run; the report with ratios to this project."""
    names = [REFERENCE, *[n for n in args.peers if n != REFERENCE]]
    settings = {"jobs": args.jobs, "runs": args.runs, "contenders": names}
    report = _common.new_report("peers", "peer comparison", url, given_url, settings)
    status: dict[str, str] = {}
    for name in names:
        peer = PEERS[name]
        status[name] = "ok" if peer.installed() else f"not installed (no module {peer.module!r})"
    rates: dict[str, dict[str, list[float]]] = {n: {"enqueue": [], "drain": []} for n in names}
    shuffle = random.Random(5)
    for run_number in range(1, args.runs + 1):
        order = [n for n in names if status[n] == "ok"]
        shuffle.shuffle(order)
        for name in order:
            if status[name] != "ok":
                continue
            try:
                enqueue_rate, drain_rate, remark = one(name, url, args.jobs)
            except (PeerFailed, subprocess.SubprocessError, ValueError) as exc:
                status[name] = f"failed: {exc}"
                continue
            if remark:
                report["notes"].append(f"{PEERS[name].label}, run {run_number}: {remark}")
            rates[name]["enqueue"].append(enqueue_rate)
            rates[name]["drain"].append(drain_rate)
    summarise(report, names, rates, status)
    return report


def summarise(
    report: dict[str, Any],
    names: list[str],
    rates: dict[str, dict[str, list[float]]],
    status: dict[str, str],
) -> None:
    """Figures (rates and ratios to the reference, run by run) and each contender's status."""
    reference = rates[REFERENCE]
    complete = status[REFERENCE] == "ok"
    for name in names:
        peer = PEERS[name]
        report.setdefault("contenders", {})[name] = {
            "label": peer.label,
            "mode": peer.mode,
            "status": status[name],
        }
        if status[name] != "ok":
            report["notes"].append(f"{peer.label}: {status[name]}")
            continue
        for kind in ("enqueue", "drain"):
            mine = rates[name][kind]
            report["figures"][f"{name}_{kind}"] = _common.figure(
                f"{peer.label} ({peer.mode}): {kind}", "jobs/s", mine
            )
            if complete and name != REFERENCE:
                ratios = [m / r for m, r in zip(mine, reference[kind], strict=True)]
                report["figures"][f"{name}_{kind}_ratio"] = _common.figure(
                    f"{peer.label}: {kind} / this project's", "ratio", ratios
                )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse the arguments, run, print the table, write JSON/chart if asked; the report."""
    parser = _common.parser("benchmarks.peers", __doc__)
    parser.add_argument("--jobs", type=int, default=20_000, help="no-op jobs per contender")
    parser.add_argument(
        "--peers",
        type=lambda text: [name for name in text.split(",") if name],
        default=list(PEERS),
        help=",".join(PEERS),
    )
    args = parser.parse_args(argv)
    if set(args.peers) - set(PEERS) or args.jobs < 2 or args.runs < 1:
        parser.error(f"peers are {', '.join(PEERS)}; need jobs >= 2, runs >= 1")
    with _common.redis_server(args.redis_url) as url:
        report = run(url, bool(args.redis_url), args)
    return _common.finish(report, args, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
