"""What every benchmark shares: the throwaway Redis, the record of the environment, medians over
runs, percentiles, the report (JSON and a printed table) and an optional PNG chart.

A report is a JSON object::

    {"benchmark": "scripts", "title": "...", "date": "...", "commit": "...",
     "redis_version": "7.0.15", "redis_py_version": "...", "machine": {...},
     "settings": {...}, "figures": {KEY: {"label", "unit", "median", "runs"}, ...},
     "notes": [...]}

``figures`` keep insertion order; ``runs`` holds the value of every run and ``median`` their
median. ``python -m benchmarks.report`` turns a folder of such files into markdown tables.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from scheduler._local_redis import LocalRedis

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"


# -- the Redis a run measures ------------------------------------------------------------------


@contextmanager
def redis_server(url: str | None) -> Iterator[str]:
    """Yield ``url`` if given, else the URL of a throwaway local ``redis-server`` (free loopback
    port, no persistence) that is stopped when the block ends."""
    if url:
        yield url
        return
    with LocalRedis() as server:
        yield server.url


def connect(url: str) -> redis.Redis:
    """A plain client of the Redis at ``url`` (bytes replies, 30 s socket timeout)."""
    return redis.Redis.from_url(url, socket_timeout=30)


# -- timing ------------------------------------------------------------------------------------


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """Yield a one-item list that holds the elapsed seconds once the block ends."""
    elapsed = [0.0]
    start = time.perf_counter()
    try:
        yield elapsed
    finally:
        elapsed[0] = time.perf_counter() - start


def timed_calls(count: int, call: Callable[[], Any]) -> tuple[float, list[float]]:
    """Make ``count`` sequential calls; the seconds of the whole, and of each call."""
    latencies: list[float] = []
    clock = time.perf_counter
    with stopwatch() as elapsed:
        for _ in range(count):
            before = clock()
            call()
            latencies.append(clock() - before)
    return elapsed[0], latencies


def time_each(calls: Iterable[Callable[[], Any]]) -> list[float]:
    """Make each call in turn; the seconds each one took."""
    clock = time.perf_counter
    latencies: list[float] = []
    for call in calls:
        before = clock()
        call()
        latencies.append(clock() - before)
    return latencies


def wait_until(
    predicate: Callable[[], bool], timeout_s: float, poll_s: float = 0.005, what: str = "it"
) -> float:
    """Poll ``predicate`` every ``poll_s`` until it holds; the ``perf_counter`` time it was first
    seen true. Raises ``RuntimeError`` after ``timeout_s``."""
    deadline = time.perf_counter() + timeout_s
    while not predicate():
        if time.perf_counter() > deadline:
            raise RuntimeError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(poll_s)
    return time.perf_counter()


def percentile(values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile of ``values`` (non-empty)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    """``items`` cut into consecutive slices of at most ``size``."""
    return [items[i : i + size] for i in range(0, len(items), size)]


# -- the report --------------------------------------------------------------------------------


def figure(label: str, unit: str, runs: Sequence[float]) -> dict[str, Any]:
    """One reported figure: its label and unit, the median over runs, and every run."""
    values = [float(v) for v in runs]
    return {"label": label, "unit": unit, "median": statistics.median(values), "runs": values}


def git_commit() -> str:
    """The repository's ``HEAD`` commit (with ``+dirty`` for uncommitted changes), or
    ``unknown``."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "scheduler", "lua"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}+dirty" if head and dirty else head or "unknown"


def machine() -> dict[str, Any]:
    """The machine: platform, CPUs, Python, and the load average when the run began."""
    try:
        load = [round(value, 2) for value in os.getloadavg()]
    except OSError:
        load = []
    return {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "load_average": load,
    }


def environment(client: redis.Redis) -> dict[str, Any]:
    """The date, commit, Redis version (of ``client``'s server), redis-py and the machine."""
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "redis_version": str(client.info("server")["redis_version"]),
        "redis_py_version": redis.__version__,
        "machine": machine(),
    }


def new_report(
    benchmark: str, title: str, url: str, given_url: bool, settings: dict[str, Any]
) -> dict[str, Any]:
    """The head of a report: what ran, when, on which commit, Redis, machine and settings."""
    client = connect(url)
    try:
        recorded = environment(client)
    finally:
        client.close()
    return {
        "benchmark": benchmark,
        "title": title,
        **recorded,
        "settings": {
            **settings,
            "redis": "given by --redis-url" if given_url else "throwaway local server",
        },
        "figures": {},
        "notes": [],
    }


def format_value(value: float, unit: str) -> str:
    """A figure's value as printed: rates with thousands separators, the rest with 3 decimals
    (2 for large ones)."""
    if unit.endswith("/s") or unit in ("bytes", "B/job", "jobs"):
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    return f"{value:.3f}"


def header_lines(report: dict[str, Any]) -> list[str]:
    """The lines that say what a report measured and where."""
    m = report["machine"]
    settings = ", ".join(f"{k}={v}" for k, v in report["settings"].items())
    return [
        f"{report['title']}: {report['date']}, commit {report['commit'][:12]}",
        f"Redis {report['redis_version']}, redis-py {report['redis_py_version']}, Python "
        f"{m['python']}, {m['cpu_count']} CPUs, load {m.get('load_average')}, {m['platform']}",
        f"settings: {settings}",
    ]


def render(report: dict[str, Any]) -> str:
    """The report as a plain-text table (medians over runs, then every run)."""
    figures = report["figures"]
    width = max([len(f["label"]) for f in figures.values()] + [10]) + 2
    lines = [*header_lines(report), "", f"{'figure':<{width}}{'median':>12}  {'unit':<10}runs"]
    for fig in figures.values():
        runs = " ".join(format_value(v, fig["unit"]) for v in fig["runs"])
        median = format_value(fig["median"], fig["unit"])
        lines.append(f"{fig['label']:<{width}}{median:>12}  {fig['unit']:<10}{runs}")
    lines.extend(f"note: {note}" for note in report.get("notes", []))
    return "\n".join(lines)


def write_json(path: str | Path, report: dict[str, Any]) -> None:
    """Write ``report`` as indented JSON (creating the folder)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=2) + "\n")


def draw_chart(report: dict[str, Any], path: str | Path) -> bool:
    """Draw the report's medians as horizontal bars, one panel per unit, into a PNG at ``path``.

    Needs matplotlib (the ``charts`` extra); returns False, having drawn nothing, without it.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    by_unit: dict[str, list[dict[str, Any]]] = {}
    for fig in report["figures"].values():
        by_unit.setdefault(fig["unit"], []).append(fig)
    rows = sum(len(figs) for figs in by_unit.values())
    canvas, axes = plt.subplots(
        len(by_unit), 1, figsize=(10, 1.2 + 0.32 * rows + 0.6 * len(by_unit)), squeeze=False
    )
    for axis, (unit, figs) in zip(axes[:, 0], by_unit.items(), strict=True):
        labels = [f["label"] for f in figs][::-1]
        medians = [f["median"] for f in figs][::-1]
        axis.barh(labels, medians, color="#4c72b0")
        axis.set_xlabel(f"{unit} (median of runs)")
        axis.tick_params(axis="y", labelsize=8)
    axes[0, 0].set_title(f"{report['title']} ({report['date'][:10]}, {report['commit'][:8]})")
    canvas.tight_layout()
    canvas.savefig(path, dpi=100)
    plt.close(canvas)
    return True


# -- the command line --------------------------------------------------------------------------


def parser(prog: str, doc: str | None, runs: int = 3) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes: --runs, --json, --chart,
    --redis-url."""
    built = argparse.ArgumentParser(
        prog=f"python -m {prog}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    built.add_argument("--runs", type=int, default=runs, help="runs; figures are medians")
    built.add_argument("--json", dest="json_path", help="write the report as JSON here")
    built.add_argument("--chart", help="draw a PNG chart here (needs the 'charts' extra)")
    built.add_argument("--redis-url", help="use this Redis (its database is FLUSHED)")
    return built


def command(benchmark: str, argv: Sequence[str] | None) -> str:
    """The command line that reproduces a run (without --json, --chart and --redis-url)."""
    given = list(sys.argv[1:] if argv is None else argv)
    kept: list[str] = []
    skip = False
    for arg in given:
        if skip:
            skip = False
        elif arg in ("--json", "--chart", "--redis-url"):
            skip = True
        elif not arg.startswith(("--json=", "--chart=", "--redis-url=")):
            kept.append(arg)
    return " ".join([".venv/bin/python", "-m", f"benchmarks.{benchmark}", *kept])


def finish(
    report: dict[str, Any], args: argparse.Namespace, argv: Sequence[str] | None
) -> dict[str, Any]:
    """Note the command, print the report's table, write its JSON and chart if asked; return
    the report."""
    report["command"] = command(report["benchmark"], argv)
    print(render(report))
    if args.json_path:
        write_json(args.json_path, report)
    if args.chart and not draw_chart(report, args.chart):
        print("no chart: matplotlib is not installed (pip install -e '.[charts]')")
    return report
