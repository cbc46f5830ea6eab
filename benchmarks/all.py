"""Run the whole benchmark suite at its default sizes, write every JSON report (and chart) into one
folder, then print the markdown tables of benchmarks/README.md.

    .venv/bin/python -m benchmarks.all [--out benchmarks/results] [--skip-peers] [--charts]

Order: scripts, server_time, worst_case, throughput, latency, memory, then the peer comparison
(only the contenders that are installed run; the others are reported as not installed). Each
benchmark starts its own throwaway Redis.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import latency, memory, peers, report, scripts, server_time, throughput, worst_case
from ._common import RESULTS_DIR

SUITE: dict[str, Callable[[Sequence[str] | None], dict[str, Any]]] = {
    "scripts": scripts.main,
    "server_time": server_time.main,
    "worst_case": worst_case.main,
    "throughput": throughput.main,
    "latency": latency.main,
    "memory": memory.main,
    "peers": peers.main,
}


def main(argv: Sequence[str] | None = None) -> None:
    """Run every benchmark of the suite, then print the report."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.all", description=__doc__)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="folder of the JSON files")
    parser.add_argument("--skip-peers", action="store_true", help="leave the peers out")
    parser.add_argument("--charts", action="store_true", help="draw a PNG per benchmark too")
    args = parser.parse_args(argv)
    for name, run in SUITE.items():
        if name == "peers" and args.skip_peers:
            continue
        options = ["--json", str(args.out / f"{name}.json")]
        if args.charts:
            options += ["--chart", str(args.out / f"{name}.png")]
        print(f"== {name}", flush=True)
        run(options)
        print(flush=True)
    report.main([str(args.out)])


if __name__ == "__main__":
    main(sys.argv[1:])
