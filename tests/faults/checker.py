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


@dataclass(frozen=True, slots=True)
class FinalJob:
    """A job as Redis holds it at the end of a run."""

    state: str
    attempt: int
    max_attempts: int
    token: str


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


def check(
    name: str,
    records: Sequence[Record],
    final: Mapping[str, FinalJob | None],
    stored_ids: Iterable[str],
    bound_ms: float | None = None,
) -> Report:
    """The report of one run.

    Args:
        name: the fault's name, for the report.
        records: the merged history, ordered by time.
        final: each job id the history names, with its state in Redis at the end (None: no
            such job).
        stored_ids: every job id Redis holds for the queue at the end.
        bound_ms: the recovery bound (lease + reaper interval).
    """
    report = Report(name, bound_ms=bound_ms)
    report.operations = len({(r.process, r.call) for r in records if r.kind == "invoke"})
    report.unknown = len({(r.process, r.call) for r in records if r.kind == "unknown"})
    report.faults = sum(1 for r in records if r.kind == "fault" and r.op != "start")
    asked, acknowledged, refused = _enqueue_outcomes(records)
    report.jobs = len(acknowledged)
    for job_id in sorted(acknowledged):
        job = final.get(job_id)
        if job is None or job.state != "completed":
            report.lost.append(job_id)
    touched = (
        set(stored_ids) | _ids(records, "effect_start", "effect") | _ids(records, "ok", "claim")
    )
    report.unexpected = sorted((touched - asked) | (touched & refused))
    runs = Counter(r.job_id for r in records if r.kind == "effect_start" and r.job_id)
    report.duplicates = sum(n - 1 for n in runs.values())
    accepted = _accepted_tokens(records)
    for job_id, job in final.items():
        tokens = set(accepted.get(job_id, set()))
        if job is not None and job.state == "completed":
            tokens.add(job.token)
        report.max_accepted = max(report.max_accepted, len(tokens))
        if len(tokens) > 1:
            report.over_accepted.append(job_id)
        if job is not None and job.state == "dead" and job.attempt < job.max_attempts:
            report.early_dead.append(job_id)
    report.stale_refused = sum(
        1 for r in records if r.kind == "ok" and r.op == "complete" and r.status == "lease_lost"
    )
    report.hidden_leases = _hidden_leases(records, final)
    report.recoveries = recoveries(records, final)
    return report
