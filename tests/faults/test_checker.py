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


# -- jobs marked to end otherwise than completed ------------------------------------------------


def mark(op: str, job_id: str, t: float = 0.5, **fields: Any) -> Record:
    """A fault record marking ``job_id``."""
    return rec(t, "test", "fault", op, job_id=job_id, **fields)


def dead(attempt: int, error: str, max_attempts: int = 5, outcome: str = "dead") -> FinalJob:
    """A job dead at ``attempt`` with ``error``."""
    return FinalJob("dead", attempt, max_attempts, T1, error=error, outcome=outcome)


POISON_ERROR = "payload could not be decoded: msgpack ext type 5 is not accepted"


def poisoned(*extra: Record) -> list[Record]:
    """``p`` marked poison, enqueued, claimed and failed for good; ``a`` a clean run."""
    records = [mark("poison", "p", detail="ext type 5"), *enqueued("p"), *clean_run()]
    records += leased("p", T1, 1.5, "w2", 5)
    records += [rec(1.6, "w2", "ok", "fail", call=6, job_id="p", token=T1, status="dead")]
    return sorted([*records, *extra], key=lambda r: r.t)


def test_a_poison_job_dead_at_once_without_running_is_no_problem() -> None:
    final = {"a": done(), "p": dead(1, POISON_ERROR)}
    report = check("poison", poisoned(), final, {"a", "p"})
    assert report.problems() == []
    assert report.marked == {"poison": 1}
    assert (report.lost, report.early_dead, report.jobs) == ([], [], 2)


@pytest.mark.parametrize(
    ("final", "extra", "found"),
    [
        (dead(1, POISON_ERROR), ran("p", T1, 1.7, "w2"), "its handler began 1 time(s)"),
        (dead(2, POISON_ERROR), [], "dead at attempt 2, not 1"),
        (done(), [], "completed, not dead"),
        (None, [], "gone, not dead"),
        (dead(1, "payload could not be decoded: payload is not valid msgpack"), [], "error"),
        (dead(1, "ValueError: boom ext type 5"), [], "error"),
    ],
    ids=["ran", "retried", "completed", "gone", "other-reason", "not-a-decode-error"],
)
def test_a_poison_job_that_ended_otherwise_is_a_wrong_end(
    final: FinalJob | None, extra: list[Record], found: str
) -> None:
    report = check("poison", poisoned(*extra), {"a": done(), "p": final}, {"a", "p"})
    assert len(report.wrong_end) == 1 and report.wrong_end[0].startswith(f"p: {found}")
    assert report.lost == [] and "ended wrong" in report.problems()[0]


def test_a_good_job_dead_beside_the_poison_is_still_lost() -> None:
    final = {"a": dead(1, POISON_ERROR), "p": dead(1, POISON_ERROR)}
    report = check("poison", poisoned(), final, {"a", "p"})
    assert report.lost == ["a"] and report.early_dead == ["a"] and report.wrong_end == []


def unencodable(runs: int) -> list[Record]:
    """``u`` marked unencodable (a set), enqueued, claimed, run ``runs`` times."""
    records = [mark("unencodable", "u", detail="(a set)"), *enqueued("u"), *leased("u", T1, 1)]
    for n in range(runs):
        records += ran("u", T1, 2 + n)
    return records


@pytest.mark.parametrize(
    ("runs", "error", "found"),
    [
        (1, "result could not be encoded: TypeError: can not serialize 'set' object (a set)", ""),
        (0, "result could not be encoded: TypeError: can not serialize 'set' object (a set)",
         "u: its handler never began"),
        (1, "result could not be encoded: TypeError: ... (a Decimal)", "u: error"),
        (1, "payload could not be decoded: (a set)", "u: error"),
    ],
    ids=["as-it-must", "never-ran", "other-type", "other-failure"],
)  # fmt: skip
def test_an_unencodable_result_s_job_must_be_dead_at_once_naming_the_type(
    runs: int, error: str, found: str
) -> None:
    report = check("unencodable", unencodable(runs), {"u": dead(1, error)}, {"u"})
    assert [w[: len(found)] for w in report.wrong_end] == ([found] if found else [])
    assert report.early_dead == [] and report.lost == []


HANDED_BACK = "handed back unfinished on attempt 3 of 3 (worker w3)"


def overran(runs: int) -> list[Record]:
    """``o`` marked overrun, enqueued, begun ``runs`` times by successive workers."""
    records = [mark("overrun", "o"), *enqueued("o")]
    for n in range(runs):
        token = f"{n + 1}-00000000000000c{n}"
        records += leased("o", token, 1 + n, f"w{n + 1}", 1)
        records += [rec(1.5 + n, f"w{n + 1}", "effect_start", "effect", job_id="o", token=token)]
    return records


@pytest.mark.parametrize(
    ("runs", "final", "found"),
    [
        (3, dead(3, HANDED_BACK, 3, "returned"), ""),
        (2, dead(3, HANDED_BACK, 3, "returned"), "o: its handler began 2 times, not 3"),
        (3, dead(3, HANDED_BACK, 3, "expired"), "o: outcome 'expired'"),
        (3, dead(2, HANDED_BACK, 3, "returned"), "o: dead at attempt 2, not 3"),
        (3, dead(3, "handed back unfinished on attempt 2 of 3", 3, "returned"), "o: error"),
        (3, FinalJob("waiting", 3, 3, T1), "o: waiting, not dead"),
    ],
    ids=["as-it-must", "ran-twice", "expired", "early", "wrong-attempt-text", "waiting"],
)
def test_an_overrun_job_must_be_dead_after_exactly_max_attempts_starts(
    runs: int, final: FinalJob, found: str
) -> None:
    report = check("overrun", overran(runs), {"o": final}, {"o"})
    assert [w[: len(found)] for w in report.wrong_end] == ([found] if found else [])
    assert report.early_dead == [] and report.lost == []
    assert report.duplicates == max(0, runs - 1)


PLANTED = b"\x03\x00\x01"


def planted(op: str, where: str = "ready") -> list[Record]:
    """``x`` enqueued, then a ``op`` record planted over it in ``where``."""
    return [*enqueued("x"), mark(op, "x", 1, status=where, detail=PLANTED.hex())]


def unreadable(state: str, why: str, record: bytes = PLANTED) -> FinalJob:
    """A job whose record cannot be read."""
    return FinalJob(state, 0, 0, "", unreadable=why, record=record)


@pytest.mark.parametrize(
    ("op", "final", "sets", "found"),
    [
        ("corrupt", unreadable("quarantined", "corrupt"), ("quarantine",), ""),
        ("corrupt", unreadable("unreadable", "corrupt"), ("ready",), "x: not in the quarantine"),
        ("corrupt", unreadable("quarantined", "corrupt", b"\x03"), ("quarantine",),
         "x: its record is not the one planted"),
        ("corrupt", FinalJob("completed", 1, 5, T1), ("completed",), "x: completed, not a"),
        ("newer", unreadable("unreadable", "newer"), ("ready",), ""),
        ("newer", unreadable("unreadable", "newer", b"\x04"), ("ready",),
         "x: its record is not the one planted"),
        ("newer", unreadable("unreadable", "newer"), ("delayed",), "x: in ['delayed'], not in"),
        ("newer", unreadable("quarantined", "corrupt"), ("quarantine",), "x: quarantined, not"),
    ],
    ids=["quarantined", "left-in-ready", "bytes-changed", "completed",
         "newer-untouched", "newer-rewritten", "newer-moved", "newer-quarantined"],
)  # fmt: skip
def test_a_planted_record_must_be_set_aside_as_its_kind_says(
    op: str, final: FinalJob, sets: tuple[str, ...], found: str
) -> None:
    report = check("unreadable", planted(op), {"x": final}, {"x"}, placement={"x": sets})
    assert [w[: len(found)] for w in report.wrong_end] == ([found] if found else [])
    assert report.lost == [] and report.misplaced == []


@pytest.mark.parametrize(
    ("stored", "placement", "found"),
    [
        ({"a", "b"}, {"a": ("completed",), "b": ("stubs",)}, []),
        ({"a"}, {}, ["a in []"]),
        ({"a"}, {"a": ("ready", "active")}, ["a in ['ready', 'active']"]),
        (set(), {"a": ("dead",)}, ["a in ['dead'] without a record"]),
    ],
    ids=["one-set-each", "in-no-set", "in-two-sets", "a-member-without-a-record"],
)
def test_every_job_must_be_in_exactly_one_set(
    stored: set[str], placement: dict[str, tuple[str, ...]], found: list[str]
) -> None:
    final: dict[str, FinalJob | None] = {job_id: done() for job_id in stored}
    records = [r for job_id in sorted(stored) for r in enqueued(job_id)]
    report = check("placement", records, final, stored, placement=placement)
    assert report.misplaced == found
    assert bool(found) == any("not in one set" in p for p in report.problems())


def completions(ids: list[str], start: float, step: float) -> list[Record]:
    """Each of ``ids`` claimed and completed, one every ``step`` seconds from ``start``."""
    records = []
    for n, job_id in enumerate(ids):
        records += leased(job_id, T1, start + n * step - 0.01, call=2 * n + 10)
        records += completed(job_id, T1, start + n * step, call=2 * n + 11)
    return records


def test_the_rates_around_the_first_poison_claim() -> None:
    good = [f"g{n}" for n in range(20)]
    records = [r for job_id in good for r in enqueued(job_id)]
    records += completions(good[:10], 1.0, 0.1)  # 10 in the second before the poison
    records += [mark("poison", "p"), *enqueued("p"), *leased("p", T2, 2.0, "w2", 99)]
    records += completions(good[10:], 2.2, 0.2)  # 10 in the two seconds after
    records.sort(key=lambda r: r.t)
    final: dict[str, FinalJob | None] = {job_id: done() for job_id in good}
    final["p"] = dead(1, "payload could not be decoded: x")
    report = check("rates", records, final, set(final))
    assert report.problems() == []
    before, after = report.rates or (0, 0)
    assert before == pytest.approx(10 / 1.01, rel=0.01)
    assert after == pytest.approx(10 / 2.0, rel=0.02)


def test_no_rates_without_enough_completions_on_both_sides() -> None:
    report = check("few", poisoned(), {"a": done(), "p": dead(1, POISON_ERROR)}, {"a", "p"})
    assert report.rates is None
