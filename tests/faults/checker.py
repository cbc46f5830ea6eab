"""Read a fault run's history and the queue's final state; report what the guarantees say must
hold (pure functions: no Redis, no clock).

What :func:`check` counts, per run:

* **lost**: jobs whose enqueue Redis acknowledged but that did not end completed;
* **unexpected**: jobs stored in Redis, claimed or run that no client asked for (or whose every
  enqueue was refused);
* **duplicate executions**: side effects begun beyond the first, per job (allowed by
  at-least-once delivery: a worker killed between its side effect and its acknowledgement);
* **accepted completions per job**: the distinct lease tokens whose completion Redis accepted,
  together with the token the job finished with; more than one is a broken fence;
* **stale completions refused**: completions answered ``lease_lost``;
* **dead-letterings before max attempts**: jobs dead with attempts left;
* **hidden leases**: attempts Redis counted for which no client ever saw a lease (a repeated
  claim that leased again instead of returning the first claim's leases);
* **recovery times**: for each fault that took a participant away (``kill``, ``stop``), each
  job it held a lease on, the time from the fault to the start of the claim that handed the job
  out again; each must be within the published bound (lease + reaper interval).

Some faults **mark a job** as one that must not complete (a ``fault`` record of an op in
:data:`MARKS`, with its ``job_id``): such a job is not counted lost, nor dead before max
attempts; instead it must end as its mark says, or it is a **wrong end**:

* ``poison`` (a payload no worker can decode): dead at attempt 1, its error
  ``"payload could not be decoded: ..."`` (containing the mark's ``detail``), and its handler
  never ran (no ``effect_start``);
* ``unencodable`` (its handler returns a result msgpack cannot encode): dead at attempt 1 after
  its handler ran, its error ``"result could not be encoded: ..."`` naming the type (``detail``);
* ``overrun`` (its handler outlives every worker's grace period, workers stopped with
  SIGTERM): dead at exactly ``max_attempts`` with outcome ``returned``, its error
  ``"handed back unfinished on attempt N of N ..."``, its handler begun exactly N times;
* ``corrupt`` (a corrupt record planted over it): in the quarantine, its record as planted;
* ``newer`` (a record of a newer version planted over it): left untouched, its record exactly
  as planted (``detail``, hex) and still in the set it was planted in (the mark's ``status``).

When the placement of every job is given (which of the state sets, ``stubs`` and
``quarantine`` hold it), every job Redis holds a record of must be in exactly one of them, and
no set may hold a job without a record: a job **misplaced** breaks that. When a run has
``poison`` or ``unencodable`` jobs, the report also has the **rates** at which the other jobs
completed before the first of them was claimed and after (a figure, not a check).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tests.faults.history import Record

ACCEPTED = ("ok", "duplicate")
"""Statuses of a completion that mean Redis accepted it (``duplicate``: this very token had
completed the job already, the first acceptance)."""
HOLDER_FAULTS = ("kill", "stop")
"""Faults that take a participant away while it may hold leases."""
MARKS = ("poison", "unencodable", "overrun", "corrupt", "newer")
"""Faults that mark a job as one that must end otherwise than completed (module docstring)."""
MET_ON_CLAIM = ("poison", "unencodable")
"""Marks a worker meets when it claims the job: the split point of the report's rates."""
SETS = ("ready", "delayed", "active", "completed", "dead", "cancelled", "stubs", "quarantine")
"""The ZSETs one of which holds each job Redis has a record of."""


@dataclass(frozen=True, slots=True)
class FinalJob:
    """A job as Redis holds it at the end of a run."""

    state: str
    """A state's value, or ``quarantined`` / ``unreadable`` for a record the scripts cannot
    read (in the quarantine, or not)."""
    attempt: int
    max_attempts: int
    token: str
    error: str | None = None
    outcome: str = ""
    unreadable: str | None = None
    """Why the record cannot be read (``corrupt`` or ``newer``), for such a record."""
    record: bytes | None = None
    """The raw record, for a record the scripts cannot read."""


@dataclass(frozen=True, slots=True)
class Recovery:
    """One job a fault left behind: who held it, and when it was offered again."""

    job_id: str
    token: str
    target: str
    after_ms: float | None
    """Fault to the start of the next claim that handed it out; None if none did."""


@dataclass
class Report:
    """The figures of one run (see the module docstring)."""

    name: str
    operations: int = 0
    jobs: int = 0
    unknown: int = 0
    faults: int = 0
    lost: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    duplicates: int = 0
    max_accepted: int = 0
    over_accepted: list[str] = field(default_factory=list)
    stale_refused: int = 0
    early_dead: list[str] = field(default_factory=list)
    hidden_leases: int = 0
    recoveries: list[Recovery] = field(default_factory=list)
    bound_ms: float | None = None
    marked: dict[str, int] = field(default_factory=dict)
    """How many jobs each marking fault marked (``poison``: 12, ...)."""
    wrong_end: list[str] = field(default_factory=list)
    """Marked jobs that did not end as their mark says, each ``"<id>: <what>"``."""
    misplaced: list[str] = field(default_factory=list)
    """Jobs not in exactly one set, each ``"<id> in <sets>"`` (with the placement only)."""
    rates: tuple[float, float] | None = None
    """Completions per second of the unmarked jobs before the first ``poison`` or
    ``unencodable`` job was claimed, and after (None: no such job, or too few completions)."""

    @property
    def recovery_ms(self) -> list[float]:
        """Every measured recovery time, in ms."""
        return [r.after_ms for r in self.recoveries if r.after_ms is not None]

    @property
    def worst_recovery_ms(self) -> float | None:
        """The longest recovery, or None when no job was left behind."""
        return max(self.recovery_ms, default=None)

    @property
    def late(self) -> list[Recovery]:
        """Recoveries past the bound."""
        bound = self.bound_ms
        return [r for r in self.recoveries if bound and r.after_ms and r.after_ms > bound]

    @property
    def never_recovered(self) -> list[Recovery]:
        """Jobs a fault left behind that no claim handed out again."""
        return [r for r in self.recoveries if r.after_ms is None]

    def problems(self, *, no_hidden_leases: bool = False) -> list[str]:
        """Every broken guarantee, in words (empty when the run is clean)."""
        found = []
        if self.lost:
            found.append(f"{len(self.lost)} job(s) lost: {self.lost[:5]}")
        if self.unexpected:
            found.append(f"{len(self.unexpected)} unexpected job(s): {self.unexpected[:5]}")
        if self.over_accepted:
            found.append(f"more than one accepted completion: {self.over_accepted[:5]}")
        if self.early_dead:
            found.append(f"dead-lettered before max attempts: {self.early_dead[:5]}")
        if self.late:
            found.append(f"recovered later than {self.bound_ms} ms: {self.late[:5]}")
        if self.never_recovered:
            found.append(f"never offered again: {self.never_recovered[:5]}")
        if no_hidden_leases and self.hidden_leases:
            found.append(f"{self.hidden_leases} lease(s) handed out that no client saw")
        if self.wrong_end:
            found.append(f"{len(self.wrong_end)} marked job(s) ended wrong: {self.wrong_end[:5]}")
        if self.misplaced:
            found.append(f"{len(self.misplaced)} job(s) not in one set: {self.misplaced[:5]}")
        return found


def _tokens_attempt(token: str) -> int:
    """The attempt number a lease token starts with (``<attempt>-<nonce>``)."""
    head, _, _ = token.partition("-")
    return int(head) if head.isdigit() else 0


def _ids(records: Iterable[Record], kind: str, op: str) -> set[str]:
    return {r.job_id for r in records if r.kind == kind and r.op == op and r.job_id}


def _enqueue_outcomes(records: Sequence[Record]) -> tuple[set[str], set[str], set[str]]:
    """(ids asked for, ids acknowledged, ids only ever refused)."""
    asked = _ids(records, "invoke", "enqueue")
    acknowledged = _ids(records, "ok", "enqueue")
    maybe = _ids(records, "unknown", "enqueue")
    refused = _ids(records, "fail", "enqueue") - acknowledged - maybe
    return asked, acknowledged, refused


def _accepted_tokens(records: Sequence[Record]) -> dict[str, set[str]]:
    accepted: dict[str, set[str]] = defaultdict(set)
    for r in records:
        if r.kind == "ok" and r.op == "complete" and r.status in ACCEPTED and r.job_id:
            accepted[r.job_id].add(r.token or "")
    return accepted


def _hidden_leases(records: Sequence[Record], final: Mapping[str, FinalJob | None]) -> int:
    seen: dict[str, set[int]] = defaultdict(set)
    for r in records:
        if r.kind == "ok" and r.op == "claim" and r.job_id and r.token:
            seen[r.job_id].add(_tokens_attempt(r.token))
    hidden = 0
    for job_id, job in final.items():
        if job is not None:
            hidden += sum(1 for n in range(1, job.attempt + 1) if n not in seen[job_id])
    return hidden


def _settled_tokens(records: Sequence[Record], until: float) -> set[str]:
    """Leases that ended (completed, failed, handed back, refused or found lost) by ``until``."""
    ended = set()
    for r in records:
        if r.t > until:
            break
        if r.kind != "ok" or not r.token:
            continue
        if r.op in ("complete", "fail", "release") or (r.op == "heartbeat" and r.status == "lost"):
            ended.add(r.token)
    return ended


def _held_at(records: Sequence[Record], target: str, until: float) -> list[tuple[str, str]]:
    """The (job id, token) leases ``target`` held at ``until``: its claims that no one claimed
    again since and that it had not ended."""
    last: dict[str, tuple[str, str]] = {}
    for r in records:
        if r.t > until:
            break
        if r.kind == "ok" and r.op == "claim" and r.job_id and r.token:
            last[r.job_id] = (r.process, r.token)
    ended = _settled_tokens(records, until)
    return [
        (job_id, token)
        for job_id, (holder, token) in last.items()
        if holder == target and token not in ended
    ]


def _claim_starts(records: Sequence[Record]) -> dict[tuple[str, int], float]:
    """When each claim call began, by (process, call)."""
    return {(r.process, r.call): r.t for r in records if r.kind == "invoke" and r.op == "claim"}


def _next_offer(
    records: Sequence[Record],
    starts: Mapping[tuple[str, int], float],
    job_id: str,
    token: str,
    after: float,
) -> float | None:
    """When the first claim that handed ``job_id`` out again (another lease) started."""
    for r in records:
        if (
            r.t > after
            and r.kind == "ok"
            and r.op == "claim"
            and r.job_id == job_id
            and r.token != token
        ):
            return max(after, starts.get((r.process, r.call), r.t))
    return None


def recoveries(records: Sequence[Record], final: Mapping[str, FinalJob | None]) -> list[Recovery]:
    """For each kill or stop, each lease its target held, and how long until it was offered
    again. A lease whose completion landed although the reply was lost (the job finished with
    that very token) was not left behind."""
    found = []
    starts = _claim_starts(records)
    for fault in records:
        if fault.kind != "fault" or fault.op not in HOLDER_FAULTS or not fault.target:
            continue
        for job_id, token in _held_at(records, fault.target, fault.t):
            offered = _next_offer(records, starts, job_id, token, fault.t)
            job = final.get(job_id)
            if (
                offered is None
                and job is not None
                and (job.state, job.token)
                == (
                    "completed",
                    token,
                )
            ):
                continue  # its last acknowledgement reached Redis
            after = None if offered is None else (offered - fault.t) * 1000
            found.append(Recovery(job_id, token, fault.target, after))
    return found


def marks(records: Sequence[Record]) -> dict[str, Record]:
    """The job ids a fault marked (see :data:`MARKS`), each with its (latest) mark."""
    return {r.job_id: r for r in records if r.kind == "fault" and r.op in MARKS and r.job_id}


def _dead_with(job: FinalJob | None, attempt: int, prefix: str, detail: str | None) -> str | None:
    """What is wrong with ``job`` for one that must be dead at ``attempt`` with an error that
    starts with ``prefix`` and contains ``detail``; None when nothing is."""
    if job is None or job.state != "dead":
        return f"{'gone' if job is None else job.state}, not dead"
    if job.attempt != attempt:
        return f"dead at attempt {job.attempt}, not {attempt}"
    error = job.error or ""
    if not error.startswith(prefix) or (detail and detail not in error):
        return f"error {error!r}"
    return None


def _overrun_end(job: FinalJob | None, runs: int) -> str | None:
    """What is wrong with an ``overrun`` job's end; None when nothing is."""
    if job is None:
        return "gone, not dead"
    n = job.max_attempts
    found = _dead_with(job, n, f"handed back unfinished on attempt {n} of {n}", None)
    if found is None and job.outcome != "returned":
        found = f"outcome {job.outcome!r}, not 'returned'"
    if found is None and runs != n:
        found = f"its handler began {runs} times, not {n}"
    return found


def _set_aside_end(mark: Record, job: FinalJob | None, sets: tuple[str, ...] | None) -> str | None:
    """What is wrong with the end of a job a ``corrupt`` or ``newer`` record was planted over;
    None when nothing is."""
    if job is None or job.unreadable != mark.op:
        return f"{'gone' if job is None else job.state}, not a {mark.op} record"
    if mark.detail is not None and (job.record or b"").hex() != mark.detail:
        return "its record is not the one planted"
    if mark.op == "corrupt" and job.state != "quarantined":
        return "not in the quarantine"
    where = ("quarantine",) if mark.op == "corrupt" else (mark.status,)
    if sets is not None and sets != where:
        return f"in {list(sets)}, not in {list(where)}"
    return None


def _end_problem(
    mark: Record, job: FinalJob | None, runs: int, sets: tuple[str, ...] | None
) -> str | None:
    """What is wrong with the end of a job ``mark`` marked; None when it ended as it must."""
    if mark.op == "poison":
        found = _dead_with(job, 1, "payload could not be decoded: ", mark.detail)
        return found or (f"its handler began {runs} time(s)" if runs else None)
    if mark.op == "unencodable":
        found = _dead_with(job, 1, "result could not be encoded: ", mark.detail)
        return found or (None if runs else "its handler never began")
    if mark.op == "overrun":
        return _overrun_end(job, runs)
    return _set_aside_end(mark, job, sets)


def misplaced(placement: Mapping[str, tuple[str, ...]], stored_ids: Iterable[str]) -> list[str]:
    """Jobs with a record in no set or in several, and set members without a record."""
    stored = set(stored_ids)
    found = []
    for job_id in sorted(stored | set(placement)):
        sets = placement.get(job_id, ())
        if job_id in stored and len(sets) != 1:
            found.append(f"{job_id} in {list(sets)}")
        elif job_id not in stored and sets:
            found.append(f"{job_id} in {list(sets)} without a record")
    return found


def rates_around(
    records: Sequence[Record], split: float, ids: set[str]
) -> tuple[float, float] | None:
    """Accepted completions per second of ``ids`` before ``split`` (from the first claim of one
    of them) and after it (to the last completion); None when either part has fewer than 5."""
    start = min(
        (r.t for r in records if r.kind == "ok" and r.op == "claim" and r.job_id in ids),
        default=None,
    )
    done = sorted(
        r.t
        for r in records
        if r.kind == "ok" and r.op == "complete" and r.status == "ok" and r.job_id in ids
    )
    before = [t for t in done if t < split]
    after = [t for t in done if t >= split]
    if start is None or len(before) < 5 or len(after) < 5 or not start < split < after[-1]:
        return None
    return len(before) / (split - start), len(after) / (after[-1] - split)


def _first_claim(records: Sequence[Record], ids: set[str]) -> float | None:
    """When the first of ``ids`` was first handed to a worker."""
    return next(
        (r.t for r in records if r.kind == "ok" and r.op == "claim" and r.job_id in ids), None
    )


def _check_marks(
    report: Report,
    records: Sequence[Record],
    final: Mapping[str, FinalJob | None],
    placement: Mapping[str, tuple[str, ...]] | None,
    runs: Counter[str],
) -> None:
    """The marked jobs' figures: how many of each, the wrong ends, the rates."""
    marked = marks(records)
    report.marked = dict(Counter(mark.op for mark in marked.values()))
    for job_id, mark in sorted(marked.items()):
        sets = None if placement is None else placement.get(job_id, ())
        problem = _end_problem(mark, final.get(job_id), runs[job_id], sets)
        if problem:
            report.wrong_end.append(f"{job_id}: {problem}")
    met = {job_id for job_id, mark in marked.items() if mark.op in MET_ON_CLAIM}
    split = _first_claim(records, met) if met else None
    if split is not None:
        others = _ids(records, "ok", "enqueue") - set(marked)
        report.rates = rates_around(records, split, others)


def check(
    name: str,
    records: Sequence[Record],
    final: Mapping[str, FinalJob | None],
    stored_ids: Iterable[str],
    bound_ms: float | None = None,
    placement: Mapping[str, tuple[str, ...]] | None = None,
) -> Report:
    """The report of one run.

    Args:
        name: the fault's name, for the report.
        records: the merged history, ordered by time.
        final: each job id the history names, with its state in Redis at the end (None: no
            such job).
        stored_ids: every job id Redis holds for the queue at the end.
        bound_ms: the recovery bound (lease + reaper interval).
        placement: which of :data:`SETS` hold each job id (stored, or a member of one of
            them), read at the end; None: not checked.
    """
    report = Report(name, bound_ms=bound_ms)
    stored_ids = set(stored_ids)
    report.operations = len({(r.process, r.call) for r in records if r.kind == "invoke"})
    report.unknown = len({(r.process, r.call) for r in records if r.kind == "unknown"})
    report.faults = sum(1 for r in records if r.kind == "fault" and r.op != "start")
    asked, acknowledged, refused = _enqueue_outcomes(records)
    marked = set(marks(records))
    report.jobs = len(acknowledged)
    for job_id in sorted(acknowledged - marked):
        job = final.get(job_id)
        if job is None or job.state != "completed":
            report.lost.append(job_id)
    touched = stored_ids | _ids(records, "effect_start", "effect") | _ids(records, "ok", "claim")
    report.unexpected = sorted((touched - asked) | (touched & refused))
    runs = Counter(r.job_id for r in records if r.kind == "effect_start" and r.job_id)
    report.duplicates = sum(n - 1 for n in runs.values())
    _count_completions(report, records, final, marked)
    report.hidden_leases = _hidden_leases(records, final)
    report.recoveries = recoveries(records, final)
    _check_marks(report, records, final, placement, runs)
    if placement is not None:
        report.misplaced = misplaced(placement, stored_ids)
    return report


def _count_completions(
    report: Report,
    records: Sequence[Record],
    final: Mapping[str, FinalJob | None],
    marked: set[str],
) -> None:
    """Accepted completions per job, stale ones refused, dead-letterings before max attempts
    (of unmarked jobs: a marked one is checked against its mark)."""
    accepted = _accepted_tokens(records)
    for job_id, job in final.items():
        tokens = set(accepted.get(job_id, set()))
        if job is not None and job.state == "completed":
            tokens.add(job.token)
        report.max_accepted = max(report.max_accepted, len(tokens))
        if len(tokens) > 1:
            report.over_accepted.append(job_id)
        if job is None or job_id in marked:
            continue
        if job.state == "dead" and job.attempt < job.max_attempts:
            report.early_dead.append(job_id)
    report.stale_refused = sum(
        1 for r in records if r.kind == "ok" and r.op == "complete" and r.status == "lease_lost"
    )
