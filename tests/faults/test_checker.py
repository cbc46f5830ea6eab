"""The checker itself, on hand-made histories: a clean run passes, and each broken guarantee is
found. Also the history files: several writers, merged in time order, a torn last line skipped.
No Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.faults.checker import FinalJob, check
from tests.faults.history import HistoryWriter, Record, parse_lines, read_history

T1 = "1-00000000000000a1"
T2 = "2-00000000000000b2"


def rec(t: float, process: str, kind: str, op: str, **fields: Any) -> Record:
    """A record at ``t`` seconds."""
    return Record(t, process, kind, op, **fields)


def enqueued(job_id: str, t: float = 0.0, kind: str = "ok") -> list[Record]:
    """An enqueue of ``job_id`` by the producer, ending with ``kind``."""
    status = "created" if kind == "ok" else None
    return [
        rec(t, "producer", "invoke", "enqueue", call=1, job_id=job_id),
        rec(t + 0.001, "producer", kind, "enqueue", call=1, job_id=job_id, status=status),
    ]


def leased(job_id: str, token: str, t: float, process: str = "w1", call: int = 1) -> list[Record]:
    """A claim by ``process`` that handed out ``token``."""
    return [
        rec(t, process, "invoke", "claim", call=call),
        rec(t + 0.001, process, "ok", "claim", call=call, job_id=job_id, token=token),
    ]


def ran(job_id: str, token: str, t: float, process: str = "w1") -> list[Record]:
    """The job's side effect, begun and finished."""
    return [
        rec(t, process, "effect_start", "effect", job_id=job_id, token=token),
        rec(t + 0.001, process, "effect_end", "effect", job_id=job_id, token=token),
    ]


def completed(
    job_id: str, token: str, t: float, status: str = "ok", process: str = "w1", call: int = 2
) -> list[Record]:
    """A completion with ``token`` answered ``status``."""
    return [
        rec(t, process, "invoke", "complete", call=call, job_id=job_id, token=token),
        rec(t + 0.001, process, "ok", "complete", call=call, job_id=job_id, token=token,
            status=status),
    ]  # fmt: skip


def done(token: str = T1, attempt: int = 1) -> FinalJob:
    """A job completed with ``token``."""
    return FinalJob("completed", attempt, 5, token)


def clean_run() -> list[Record]:
    """One job enqueued, claimed, run and completed."""
    return enqueued("a") + leased("a", T1, 1) + ran("a", T1, 2) + completed("a", T1, 3)


def test_a_clean_run_has_no_problem() -> None:
    report = check("clean", clean_run(), {"a": done()}, {"a"}, bound_ms=2000)
    assert report.problems() == []
    assert (report.jobs, report.operations, report.max_accepted, report.duplicates) == (1, 3, 1, 0)


@pytest.mark.parametrize("final", [None, FinalJob("waiting", 1, 5, T1)], ids=["gone", "waiting"])
def test_an_acknowledged_job_that_did_not_complete_is_lost(final: FinalJob | None) -> None:
    report = check("lost", enqueued("a"), {"a": final}, {"a"} if final else set())
    assert report.lost == ["a"]
    assert "lost" in report.problems()[0]


def test_a_job_whose_enqueue_outcome_was_unknown_is_not_counted_lost() -> None:
    report = check("unknown", enqueued("a", kind="unknown"), {"a": None}, set())
    assert report.lost == [] and report.jobs == 0 and report.unknown == 1


def test_jobs_nobody_asked_for_or_that_were_refused_are_unexpected() -> None:
    records = clean_run() + enqueued("refused", kind="fail") + ran("ghost", T1, 5)
    final = {"a": done(), "refused": FinalJob("waiting", 0, 5, ""), "ghost": None}
    report = check("unexpected", records, final, {"a", "refused", "stray"})
    assert report.unexpected == ["ghost", "refused", "stray"]


def test_two_accepted_completions_of_one_job_are_found() -> None:
    records = clean_run() + leased("a", T2, 4, "w2", 3) + completed("a", T2, 5, "ok", "w2", 4)
    report = check("twice", records, {"a": done(T2, 2)}, {"a"})
    assert report.max_accepted == 2 and report.over_accepted == ["a"]


def test_an_accepted_completion_that_is_not_the_final_token_counts_as_a_second() -> None:
    records = clean_run()
    report = check("mismatch", records, {"a": done(T2, 2)}, {"a"})
    assert report.over_accepted == ["a"]


def test_a_repeated_completion_with_the_same_token_is_one_acceptance() -> None:
    records = clean_run() + completed("a", T1, 4, "duplicate", call=5)
    report = check("repeat", records, {"a": done()}, {"a"})
    assert report.max_accepted == 1 and report.problems() == []


def test_stale_completions_and_duplicate_executions_are_counted() -> None:
    records = (
        enqueued("a") + leased("a", T1, 1) + ran("a", T1, 2)
        + leased("a", T2, 3, "w2", 7) + ran("a", T2, 3.5, "w2")
        + completed("a", T2, 4, "ok", "w2", 8) + completed("a", T1, 5, "lease_lost")
    )  # fmt: skip
    report = check("stale", records, {"a": done(T2, 2)}, {"a"})
    assert (report.stale_refused, report.duplicates, report.max_accepted) == (1, 1, 1)
    assert report.problems() == []


def test_a_job_dead_with_attempts_left_is_found() -> None:
    report = check("dead", enqueued("a"), {"a": FinalJob("dead", 2, 5, T2)}, {"a"})
    assert report.early_dead == ["a"]


def killed_holding_a(offered_again_at: float | None) -> list[Record]:
    """w1 claims ``a`` at 1 s and is killed at 2 s; w2 claims it again at ``offered_again_at``."""
    records = enqueued("a") + leased("a", T1, 1) + [rec(2.0, "test", "fault", "kill", target="w1")]
    if offered_again_at is not None:
        records += leased("a", T2, offered_again_at, "w2", 9)
        records += completed("a", T2, offered_again_at + 0.1, "ok", "w2", 10)
    return records


def test_a_dead_worker_s_job_offered_again_within_the_bound() -> None:
    report = check("kill", killed_holding_a(3.5), {"a": done(T2, 2)}, {"a"}, bound_ms=2000)
    assert report.recovery_ms == [pytest.approx(1500)]
    assert report.problems() == []


def test_a_dead_worker_s_job_offered_again_too_late_is_found() -> None:
    report = check("kill", killed_holding_a(4.5), {"a": done(T2, 2)}, {"a"}, bound_ms=2000)
    assert len(report.late) == 1 and "later than" in report.problems()[0]


def test_a_dead_worker_s_job_never_offered_again_is_found() -> None:
    final = {"a": FinalJob("active", 1, 5, T1)}
    report = check("kill", killed_holding_a(None), final, {"a"}, bound_ms=2000)
    assert report.never_recovered and report.lost == ["a"]


def test_a_lease_whose_last_ack_landed_before_the_kill_was_not_left_behind() -> None:
    unanswered = rec(1.9, "w1", "invoke", "complete", call=3, job_id="a", token=T1)
    records = [*killed_holding_a(None), unanswered]  # its reply never came back
    report = check("kill", sorted(records, key=lambda r: r.t), {"a": done()}, {"a"}, 2000)
    assert report.recoveries == [] and report.problems() == []


def test_a_lease_no_client_saw_is_a_hidden_lease() -> None:
    records = enqueued("a") + leased("a", T2, 1) + completed("a", T2, 2)
    report = check("hidden", records, {"a": done(T2, 2)}, {"a"})
    assert report.hidden_leases == 1
    assert report.problems() == []
    assert "no client saw" in report.problems(no_hidden_leases=True)[0]


def test_histories_of_several_writers_merge_in_time_order(tmp_path: Path) -> None:
    first, second = HistoryWriter(tmp_path, "one"), HistoryWriter(tmp_path, "two")
    second.path = tmp_path / "two-other.jsonl"  # as if written by another process
    first.write("p1", "invoke", "claim", call=first.new_call())
    with open(second.path, "w") as out:
        out.write(rec(0.0, "p2", "ok", "claim", job_id="a", token=T1).to_json() + "\n")
        out.write('{"t": 1e12, "process": "p2", "ki')  # torn by a SIGKILL
    first.write("p1", "effect_start", "effect", job_id="a", token=T1)
    first.close()
    records = read_history(tmp_path)
    assert [(r.process, r.kind) for r in records] == [
        ("p2", "ok"), ("p1", "invoke"), ("p1", "effect_start")
    ]  # fmt: skip


def test_a_torn_line_in_the_middle_of_a_file_is_an_error() -> None:
    with pytest.raises(ValueError):
        parse_lines(['{"t": 1, "pro', rec(2, "p", "ok", "claim").to_json()])
    with pytest.raises(ValueError):
        HistoryWriter.write(HistoryWriter.__new__(HistoryWriter), "p", "nonsense", "claim")
