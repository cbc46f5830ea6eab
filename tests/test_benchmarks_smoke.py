"""Smoke tests of the benchmarks: each runs at a tiny size against the test Redis and produces a
complete report with positive numbers, so none can rot. They check the report's shape only,
never the speed. The peer comparison runs only for the peers installed here (the ``peers``
extra); the others are skipped."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from benchmarks import (
    _common,
    _peers,
    drain,
    latency,
    memory,
    peers,
    quick,
    report,
    scripts,
    server_time,
    throughput,
    worst_case,
)

QUICK_FIGURES = {
    *quick.THROUGHPUT_LABELS,
    *(f"{name}_p{pct}_ms" for name in quick.LATENCY_LABELS for pct in (50, 99)),
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


def assert_complete(result: dict[str, Any], runs: int = 1) -> None:
    """Every figure has a label, a unit, a positive median and ``runs`` positive values; the
    environment is recorded."""
    assert result["figures"]
    for key, fig in result["figures"].items():
        assert fig["label"] and fig["unit"], key
        assert is_positive_number(fig["median"]), key
        assert len(fig["runs"]) == runs, key
        assert all(is_positive_number(value) for value in fig["runs"]), key
    assert result["redis_version"] and result["commit"] and result["date"]
    assert {"platform", "cpu_count", "python", "load_average"} <= set(result["machine"])
    assert result["settings"]["redis"] == "given by --redis-url"
    assert result["command"].startswith(f".venv/bin/python -m benchmarks.{result['benchmark']}")
    assert "--redis-url" not in result["command"]


@pytest.fixture
def quick_report(redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    """The JSON report of a tiny quick benchmark run (200 jobs, one round) on the test Redis."""
    out = tmp_path / "bench.json"
    returned = quick.main(
        ["--jobs", "200", "--runs", "1", "--redis-url", redis_url, "--json", str(out)]
    )
    assert "ratio: enqueue / no-op EVALSHA" in capsys.readouterr().out
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(returned))
    return written


def test_quick_report_has_every_figure(quick_report: dict[str, Any]) -> None:
    assert set(quick_report["figures"]) == QUICK_FIGURES
    assert_complete(quick_report)
    assert quick_report["settings"] == {
        "jobs": 200,
        "runs": 1,
        "batch": 100,
        "payload_bytes": 100,
        "redis": "given by --redis-url",
    }


def test_the_drain_benchmark_runs_both_runtimes(redis_url: str) -> None:
    result = drain.main(["--jobs", "100", "--runs", "1", "--redis-url", redis_url])
    assert set(result["figures"]) == {"threads", "asyncio"}
    assert_complete(result)


def test_the_scripts_benchmark_times_every_script_and_baseline(redis_url: str) -> None:
    result = scripts.main(["--calls", "20", "--runs", "1", "--redis-url", redis_url])
    for name in scripts.MEASUREMENTS:
        assert {f"{name}_p50_ms", f"{name}_p99_ms"} <= set(result["figures"]), name
    assert {f"{name}_vs_noop" for name in scripts.SCRIPTS} <= set(result["figures"])
    assert_complete(result)


def test_the_throughput_benchmark_covers_modes_payloads_and_processes(redis_url: str) -> None:
    result = throughput.main(
        ["--jobs", "60", "--runs", "1", "--payloads", "100,1024", "--processes", "1,2",
         "--redis-url", redis_url]
    )  # fmt: skip
    expected = {
        f"{mode}_{payload}B_{processes}p"
        for mode in throughput.MODES
        for payload in (100, 1024)
        for processes in (1, 2)
    }
    assert set(result["figures"]) == expected
    assert_complete(result)


def test_the_latency_benchmark_reports_percentiles_per_runtime(redis_url: str) -> None:
    result = latency.main(
        ["--rate", "200", "--seconds", "0.2", "--runs", "1", "--redis-url", redis_url]
    )
    for runtime in latency.RUNTIMES:
        for key in ("start_p50", "start_p99", "ack_p50", "ack_p99"):
            assert f"{runtime}_{key}_ms" in result["figures"]
    assert_complete(result)


def test_the_server_time_benchmark_reports_microseconds_per_job(redis_url: str) -> None:
    result = server_time.main(
        ["--jobs", "200", "--batch", "50", "--runs", "1", "--redis-url", redis_url]
    )
    assert set(result["figures"]) == set(server_time.LABELS)
    assert_complete(result)


def test_the_memory_benchmark_reports_bytes_per_job(redis_url: str) -> None:
    result = memory.main(["--jobs", "500", "--runs", "1", "--redis-url", redis_url])
    assert set(result["figures"]) == {
        "job_bytes",
        "job_overhead_bytes",
        "list_bytes",
        "list_overhead_bytes",
        "stub_bytes",
        "request_bytes_per_job",
    }
    assert_complete(result)


@pytest.mark.parametrize("name", [name for name in _peers.PEERS if name != peers.REFERENCE])
def test_the_peer_comparison_runs_each_installed_peer(redis_url: str, name: str) -> None:
    if not _peers.PEERS[name].installed():
        pytest.skip(f"{name} is not installed (pip install -e '.[peers]')")
    result = peers.main(["--jobs", "300", "--runs", "1", "--peers", name, "--redis-url", redis_url])
    assert result["contenders"][name]["status"] == "ok", result["contenders"][name]
    assert result["contenders"][peers.REFERENCE]["status"] == "ok"
    for kind in ("enqueue", "drain"):
        assert {f"{name}_{kind}", f"{name}_{kind}_ratio"} <= set(result["figures"])
    assert_complete(result)


def test_a_peer_that_is_not_installed_is_reported_not_dropped(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = _peers.Peer("Nothing", "no_such_module_here", "-", _peers.rq_enqueue, _peers.rq_work)
    monkeypatch.setitem(_peers.PEERS, "nothing", missing)
    result = peers.main(
        ["--jobs", "200", "--runs", "1", "--peers", "nothing", "--redis-url", redis_url]
    )
    assert result["contenders"]["nothing"]["status"].startswith("not installed")
    assert any(note.startswith("Nothing: not installed") for note in result["notes"])


def test_the_report_prints_markdown_tables_of_the_json_files(
    redis_url: str, tmp_path: Path
) -> None:
    memory.main(["--jobs", "100", "--runs", "1", "--redis-url", redis_url,
                 "--json", str(tmp_path / "memory.json")])  # fmt: skip
    throughput.main(["--jobs", "20", "--runs", "1", "--payloads", "100", "--processes", "1",
                     "--modes", "enqueue_many", "--redis-url", redis_url,
                     "--json", str(tmp_path / "throughput.json")])  # fmt: skip
    text = report.main([str(tmp_path)])
    assert "### memory per waiting job" in text
    assert "### end-to-end throughput" in text
    assert "| enqueue_many, batches of 100, 100 B |" in text
    assert text.index("### end-to-end throughput") < text.index("### memory per waiting job")


def test_a_chart_is_drawn_when_matplotlib_is_installed(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    fake = {
        "title": "t",
        "date": "2026-01-01T00:00:00+00:00",
        "commit": "abc",
        "figures": {"a": _common.figure("a", "jobs/s", [1.0, 2.0]),
                    "b": _common.figure("b", "ms", [0.5])},
    }  # fmt: skip
    target = tmp_path / "chart.png"
    assert _common.draw_chart(fake, target)
    assert target.read_bytes().startswith(b"\x89PNG")


def test_worst_case_report_has_every_script_at_the_default_sizes(redis_url: str) -> None:
    result = worst_case.main(["--runs", "1", "--sizes", "default", "--redis-url", redis_url])
    assert set(result["figures"]) == {f"{name}_default_ms" for name in worst_case.CASES}
    assert_complete(result)
    assert result["notes"][0].startswith("worst call at the default sizes")
