"""Smoke test of ``benchmarks/quick.py``: a tiny run against the test Redis produces a complete
JSON report with positive numbers. It checks the report's shape only, never the speed."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from benchmarks.quick import LATENCY_LABELS, THROUGHPUT_LABELS, main

EXPECTED_FIGURES = {
    *THROUGHPUT_LABELS,
    *(f"{name}_p{pct}_ms" for name in LATENCY_LABELS for pct in (50, 99)),
    "enqueue_vs_noop_evalsha",
}


def is_positive_number(value: Any) -> bool:
    """True for a finite int or float above zero (bools excluded)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


@pytest.fixture
def report(redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """The JSON report of a tiny benchmark run (200 jobs, one round) on the test Redis."""
    out = tmp_path / "bench.json"
    returned = main(["--jobs", "200", "--runs", "1", "--redis-url", redis_url, "--json", str(out)])
    assert "ratio: enqueue / no-op EVALSHA" in capsys.readouterr().out
    written: dict[str, Any] = json.loads(out.read_text())
    assert written == json.loads(json.dumps(returned))
    return written


def test_report_has_every_figure_with_positive_numbers(report: dict[str, Any]) -> None:
    assert set(report["figures"]) == EXPECTED_FIGURES
    for name, fig in report["figures"].items():
        assert fig["unit"], name
        assert is_positive_number(fig["median"]), name
        assert len(fig["runs"]) == 1, name
        assert all(is_positive_number(value) for value in fig["runs"]), name


def test_report_records_environment_and_settings(report: dict[str, Any]) -> None:
    assert report["redis_version"]
    assert report["commit"]
    assert report["date"]
    assert set(report["machine"]) == {"platform", "cpu_count", "python"}
    assert report["settings"] == {
        "jobs": 200,
        "runs": 1,
        "batch": 100,
        "payload_bytes": 100,
        "redis": "given by --redis-url",
    }


def test_the_drain_benchmark_runs_both_runtimes(redis_url: str) -> None:
    from benchmarks import drain

    report = drain.main(["--jobs", "100", "--runs", "1", "--redis-url", redis_url])
    assert len(report["figures"]) == 2
    for figure in report["figures"].values():
        assert is_positive_number(figure["median_jobs_per_s"])
