"""Print the markdown results tables of benchmarks/README.md from the benchmarks' JSON reports.

    .venv/bin/python -m benchmarks.report [FOLDER]     # default: benchmarks/results

Every ``*.json`` report in the folder becomes a section: when, which commit, which Redis, which
machine, the command that reproduces it, and its table. Known benchmarks come first, in the
suite's order; ``peers`` and ``throughput`` get tables of their own shape.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._common import RESULTS_DIR, format_value

ORDER = (
    "scripts",
    "server_time",
    "worst_case",
    "throughput",
    "latency",
    "memory",
    "peers",
    "quick",
    "drain",
)


def runs_text(fig: dict[str, Any]) -> str:
    """Every run's value of a figure."""
    return " ".join(format_value(v, fig["unit"]) for v in fig["runs"])


def short_commit(commit: str) -> str:
    """The commit's first 12 digits, keeping a ``+dirty`` mark."""
    return commit[:12] + ("+dirty" if commit.endswith("+dirty") else "")


def head(report: dict[str, Any]) -> list[str]:
    """The lines that say when, where and how a report was made."""
    m = report["machine"]
    load = ", ".join(str(v) for v in m.get("load_average", []))
    return [
        f"### {report['title']}",
        "",
        f"{report['date'][:10]}, commit `{short_commit(report['commit'])}`, Redis "
        f"{report['redis_version']} ({report['settings'].get('redis')}), redis-py "
        f"{report['redis_py_version']}, Python {m['python']}, {m['cpu_count']} CPUs "
        f"(load average at start {load}), {m['platform']}.",
        "",
        f"`{report.get('command', '')}`",
        "",
    ]


def generic(report: dict[str, Any]) -> list[str]:
    """One row per figure: median, unit, every run."""
    lines = ["| figure | median | unit | runs |", "|---|---:|---|---|"]
    for fig in report["figures"].values():
        median = format_value(fig["median"], fig["unit"])
        lines.append(f"| {fig['label']} | {median} | {fig['unit']} | {runs_text(fig)} |")
    return lines


def scripts(report: dict[str, Any]) -> list[str]:
    """One row per script or baseline: p50, p99, the p50 over the no-op EVALSHA's, the runs."""
    figs = report["figures"]
    lines = [
        "| call | p50 ms | p99 ms | p50 / no-op EVALSHA p50 | p50 of each run |",
        "|---|---:|---:|---:|---|",
    ]
    for key, fig in figs.items():
        if not key.endswith("_p50_ms"):
            continue
        name = key.removesuffix("_p50_ms")
        ratio = figs.get(f"{name}_vs_noop")
        row = [
            fig["label"].removesuffix(", p50"),
            f"{fig['median']:.3f}",
            f"{figs[f'{name}_p99_ms']['median']:.3f}",
            f"{ratio['median']:.2f}" if ratio else "",
            runs_text(fig),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def throughput(report: dict[str, Any]) -> list[str]:
    """Rows: mode and payload; columns: processes (medians, jobs/s)."""
    settings = report["settings"]
    processes = settings["processes"]
    columns = " | ".join(f"{p} process{'es' if p > 1 else ''}" for p in processes)
    lines = [
        f"| jobs/s (median of {settings['runs']} runs) | {columns} |",
        "|---|" + "---:|" * len(processes),
    ]
    for mode in settings["modes"]:
        for payload in settings["payloads"]:
            cells = []
            label = ""
            for p in processes:
                fig = report["figures"].get(f"{mode}_{payload}B_{p}p")
                if fig is None:
                    cells.append("")
                    continue
                label = fig["label"].rsplit(", ", 2)[0]
                cells.append(format_value(fig["median"], fig["unit"]))
            lines.append(f"| {label}, {payload} B | " + " | ".join(cells) + " |")
    return lines


def peers(report: dict[str, Any]) -> list[str]:
    """One row per contender: mode, enqueue and drain rates and their ratios, or its status."""
    figs = report["figures"]
    lines = [
        "| contender | mode | enqueue jobs/s | ratio | drain jobs/s | ratio | runs (drain) |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for name, info in report.get("contenders", {}).items():
        if info["status"] != "ok":
            lines.append(f"| {info['label']} | {info['mode']} | {info['status']} |||||")
            continue
        row = [info["label"], info["mode"]]
        for kind in ("enqueue", "drain"):
            row.append(format_value(figs[f"{name}_{kind}"]["median"], "jobs/s"))
            ratio = figs.get(f"{name}_{kind}_ratio")
            row.append(f"{ratio['median']:.2f}" if ratio else "1.00")
        row.append(runs_text(figs[f"{name}_drain"]))
        lines.append("| " + " | ".join(row) + " |")
    return lines


def section(report: dict[str, Any]) -> str:
    """A report as a markdown section."""
    shapes = {"scripts": scripts, "throughput": throughput, "peers": peers}
    shape = shapes.get(report["benchmark"], generic)
    notes = [f"- {note}" for note in report.get("notes", [])]
    return "\n".join([*head(report), *shape(report), *(["", *notes] if notes else [])])


def load(folder: Path) -> list[dict[str, Any]]:
    """The reports in ``folder``, known benchmarks first in the suite's order."""
    reports = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(reports, key=lambda r: rank.get(r.get("benchmark", ""), len(ORDER)))


def main(argv: Sequence[str] | None = None) -> str:
    """Print (and return) the markdown of every report in the folder."""
    args = list(sys.argv[1:] if argv is None else argv)
    folder = Path(args[0]) if args else RESULTS_DIR
    text = "\n\n".join(section(report) for report in load(folder))
    print(text)
    return text


if __name__ == "__main__":
    main()
