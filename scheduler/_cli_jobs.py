"""The job commands: ``enqueue``, ``inspect``, ``cancel``, ``dead list|requeue|purge`` and
``quarantine list|purge``.

A job whose payload or result cannot be decoded is shown with the reason and its size, never
as an error (``inspect --raw payload`` writes the stored bytes to stdout); so is a record
this version cannot read (of a newer version, or corrupt and quarantined)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from typing import Any

from ._cli_common import (
    DEFAULT_QUEUE,
    EXIT_ERROR,
    EXIT_OK,
    PROG,
    UsageError,
    command_name,
    connect,
    int_in,
    job_id,
    json_list,
    json_object,
    open_queue,
    print_json,
    queue_name,
    say,
)
from ._models import ItemStatus, JobInfo, JobOptions, UnreadableRecord
from ._status import State, Status
from ._validate import MAX_BATCH, MAX_MS
from .client import Queue
from .errors import JobNotFound, RecordUnreadable

Subparsers = Any  # argparse's _SubParsersAction, private in typeshed
DEFAULT_LIMIT = 100


def add_job_commands(commands: Subparsers, common: argparse.ArgumentParser) -> None:
    """Register enqueue, inspect, cancel and dead on ``commands``."""
    _add_enqueue(commands, common)
    inspect_parser = commands.add_parser(
        "inspect", parents=[common], help="show everything known about one job"
    )
    inspect_parser.add_argument("job_id", metavar="JOB_ID", type=job_id)
    inspect_parser.add_argument("--queue", required=True, type=queue_name, help="the job's queue")
    inspect_parser.add_argument("--json", action="store_true", help="print one JSON object")
    inspect_parser.add_argument(
        "--raw",
        choices=("payload", "result", "record"),
        default=None,
        help="write the stored bytes of the payload, result or job record to stdout",
    )
    inspect_parser.set_defaults(run=run_inspect)
    cancel_parser = commands.add_parser(
        "cancel", parents=[common], help="cancel a waiting or delayed job"
    )
    cancel_parser.add_argument("job_id", metavar="JOB_ID", type=job_id)
    cancel_parser.add_argument("--queue", required=True, type=queue_name, help="the job's queue")
    cancel_parser.set_defaults(run=run_cancel)
    _add_dead(commands, common)
    _add_quarantine(commands, common)


def _add_enqueue(commands: Subparsers, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "enqueue",
        parents=[common],
        help="enqueue a task message {task, args, kwargs}",
        description="Enqueue a job whose payload is {'task': TASK, 'args': [...], 'kwargs': {...}}"
        "; prints the job id and whether it was created (an existing --id changes nothing).",
    )
    parser.add_argument("task", metavar="TASK", help="the task's registered name")
    parser.add_argument(
        "--args", type=json_list, default=[], help="positional arguments, a JSON list"
    )
    parser.add_argument(
        "--kwargs", type=json_object, default={}, help="keyword arguments, a JSON object"
    )
    parser.add_argument(
        "--queue", type=queue_name, default=DEFAULT_QUEUE, help=f"default: {DEFAULT_QUEUE}"
    )
    parser.add_argument(
        "--delay-ms", type=int_in(0, MAX_MS), default=0, help="run no earlier than this"
    )
    parser.add_argument(
        "--priority", type=int_in(-1000, 1000), default=0, help="-1000..1000, higher first"
    )
    parser.add_argument("--id", type=job_id, default=None, help="a job id (a repeat is harmless)")
    parser.add_argument(
        "--max-attempts", type=int_in(1, 1000), default=None, help="leases allowed in all, 1..1000"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run_enqueue)


def _add_dead(commands: Subparsers, common: argparse.ArgumentParser) -> None:
    dead = commands.add_parser("dead", help="list, requeue or purge the dead letters")
    actions = dead.add_subparsers(dest="action", required=True, metavar="ACTION")
    list_parser = actions.add_parser(
        "list", parents=[common], help="the dead jobs, oldest first, with their errors"
    )
    list_parser.add_argument("--json", action="store_true", help="print one JSON object")
    list_parser.set_defaults(run=run_dead_list)
    _add_queue_and_limit(list_parser)
    for name, run, text in (
        ("requeue", run_dead_requeue, "move dead jobs back to waiting with fresh attempts"),
        ("purge", run_dead_purge, "delete dead jobs for good"),
    ):
        parser = actions.add_parser(
            name, parents=[common], help=text, description=f"{text}: the JOB_IDs, or the oldest"
        )
        parser.add_argument("job_ids", metavar="JOB_ID", nargs="*", type=job_id)
        parser.set_defaults(run=run)
        _add_queue_and_limit(parser)


def _add_quarantine(commands: Subparsers, common: argparse.ArgumentParser) -> None:
    quarantine = commands.add_parser(
        "quarantine", help="list or purge the corrupt records set aside in a queue's quarantine"
    )
    actions = quarantine.add_subparsers(dest="action", required=True, metavar="ACTION")
    list_parser = actions.add_parser(
        "list", parents=[common], help="the quarantined records, oldest first, with why"
    )
    list_parser.add_argument("--json", action="store_true", help="print one JSON object")
    list_parser.set_defaults(run=run_quarantine_list)
    _add_queue_and_limit(list_parser)
    purge_parser = actions.add_parser(
        "purge",
        parents=[common],
        help="delete quarantined records for good",
        description="delete quarantined records for good: the JOB_IDs, or the oldest",
    )
    purge_parser.add_argument("job_ids", metavar="JOB_ID", nargs="*", type=job_id)
    purge_parser.set_defaults(run=run_quarantine_purge)
    _add_queue_and_limit(purge_parser)


def _add_queue_and_limit(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queue", required=True, type=queue_name, help="the queue")
    parser.add_argument(
        "--limit",
        type=int_in(1, MAX_BATCH),
        default=DEFAULT_LIMIT,
        help=f"at most N jobs, 1..{MAX_BATCH} (default {DEFAULT_LIMIT})",
    )


def _options(args: argparse.Namespace) -> JobOptions:
    options = JobOptions(priority=args.priority, delay_ms=args.delay_ms)
    if args.max_attempts is not None:
        options = dataclasses.replace(options, max_attempts=args.max_attempts)
    return options


def run_enqueue(args: argparse.Namespace) -> int:
    """``enqueue``: one task message; prints the id and whether it was created."""
    message = {"task": args.task, "args": args.args, "kwargs": args.kwargs}
    client = connect(args)
    try:
        enqueued = open_queue(args, client, args.queue).enqueue(
            message, id=args.id, options=_options(args)
        )
    finally:
        client.close()
    if args.json:
        print_json(enqueued)
    else:
        word = "created" if enqueued.created else "exists already"
        state = enqueued.state.value if enqueued.state else "a record this version cannot read"
        print(f"{enqueued.id} {word} ({state})")
    return EXIT_OK


def _when(ms: int, now_ms: int) -> str:
    if ms <= 0:
        return "-"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))
    return f"{stamp} ({(ms - now_ms) / 1000:+.1f}s)"


def format_job(info: JobInfo) -> str:
    """A job's fields, one ``name: value`` a line; times also relative to the server's now.
    Bytes that could not be decoded are shown by their size (``--raw`` writes them out)."""
    lines = []
    for field in dataclasses.fields(info):
        value = getattr(info, field.name)
        if field.name.startswith("raw_"):
            if value is None:
                continue
            value = f"{len(value)} bytes (inspect --raw {field.name[4:]} writes them out)"
        elif field.name.endswith("_ms") and field.name != "now_ms":
            value = _when(value, info.now_ms)
        elif field.name == "options":
            value = ", ".join(
                f"{f.name}={getattr(value, f.name)}" for f in dataclasses.fields(value)
            )
        elif isinstance(value, State | Status):
            value = value.value
        lines.append(f"{field.name:>12}: {value}")
    return "\n".join(lines)


def quarantined_when(record: UnreadableRecord) -> str:
    """When the record was quarantined, as ``_when`` shows a time ("-": it was not)."""
    if record.quarantined_ms is None:
        return "-"
    return _when(record.quarantined_ms, record.now_ms)


def format_unreadable(record: UnreadableRecord) -> str:
    """What is stored for a record this version cannot read, one ``name: value`` a line."""
    why = {"newer": "written by a newer version: left untouched for it", "corrupt": "corrupt"}
    quarantined = quarantined_when(record)
    rows = [
        ("id", record.id),
        ("state", f"unreadable by this version ({why[record.reason.value]})"),
        ("record", f"{len(record.record)} bytes (inspect --raw record writes them out)"),
        ("payload", "-" if record.payload is None else f"{len(record.payload)} bytes"),
        ("note", record.note or "-"),
        ("quarantined", quarantined),
    ]
    return "\n".join(f"{name:>12}: {value}" for name, value in rows)


def stored_bytes(queue: Queue, job_id: str, what: str) -> bytes | None:
    """The stored bytes of a job's payload, result or record, as they are."""
    part = {"payload": "payload", "result": "result", "record": "meta"}[what]
    value: Any = queue.client.hget(queue.ops.keys.key(part), job_id)
    return None if value is None else bytes(value)


def run_inspect(args: argparse.Namespace) -> int:
    """``inspect``: every field of one job (or what is stored, for a record this version
    cannot read); with ``--raw``, the stored bytes of one part of it."""
    client = connect(args)
    try:
        queue = open_queue(args, client, args.queue)
        if args.raw:
            data = stored_bytes(queue, args.job_id, args.raw)
            if data is None and stored_bytes(queue, args.job_id, "record") is None:
                raise JobNotFound("no such job", queue=args.queue, job_id=args.job_id)
            sys.stdout.buffer.write(data or b"")
            sys.stdout.flush()
            return EXIT_OK
        try:
            shown: JobInfo | UnreadableRecord = queue.inspect(args.job_id)
        except RecordUnreadable as exc:
            shown = exc.record
    finally:
        client.close()
    if args.json:
        print_json(shown)
    elif isinstance(shown, JobInfo):
        print(format_job(shown))
    else:
        print(format_unreadable(shown))
    return EXIT_OK


def run_cancel(args: argparse.Namespace) -> int:
    """``cancel``: a waiting or delayed job."""
    client = connect(args)
    try:
        changed = open_queue(args, client, args.queue).cancel(args.job_id)
    finally:
        client.close()
    print(f"{args.job_id} {'cancelled' if changed else 'was cancelled already'}")
    return EXIT_OK


def listed_jobs(queue: Queue, part: str, limit: int) -> list[JobInfo | UnreadableRecord]:
    """The first ``limit`` jobs of the ZSET ``part`` (dead jobs by record expiry, quarantined
    records oldest first), each inspected on its own: a record this version cannot read is
    shown for what it is, and one gone meanwhile (trimmed, purged) is left out."""
    ids: list[Any] = queue.client.zrange(queue.ops.keys.key(part), 0, limit - 1)
    found: list[JobInfo | UnreadableRecord] = []
    for raw in ids:
        try:
            found.append(queue.inspect(raw.decode()))
        except RecordUnreadable as exc:
            found.append(exc.record)
        except JobNotFound:
            continue
    return found


def dead_line(info: JobInfo | UnreadableRecord) -> str:
    """One dead job as a line: id, attempts, when it died, its error; and a payload that
    cannot be decoded, by its size and why."""
    if isinstance(info, UnreadableRecord):
        return f"{info.id}  unreadable by this version ({info.reason.value})  {info.note or ''}"
    finished = _when(info.finished_ms, info.now_ms)
    line = f"{info.id}  attempt {info.attempt}/{info.max_attempts}  {finished}  {info.error}"
    if info.payload_error and info.raw_payload is not None:
        line += f"  [payload of {len(info.raw_payload)} bytes: {info.payload_error}]"
    return line


def run_dead_list(args: argparse.Namespace) -> int:
    """``dead list``: the dead jobs with their attempts and errors."""
    client = connect(args)
    try:
        infos = listed_jobs(open_queue(args, client, args.queue), "dead", args.limit)
    finally:
        client.close()
    if args.json:
        print_json({"queue": args.queue, "dead": infos})
        return EXIT_OK
    print(f"{len(infos)} dead job(s) on {args.queue}")
    for info in infos:
        print(dead_line(info))
    return EXIT_OK


def run_quarantine_list(args: argparse.Namespace) -> int:
    """``quarantine list``: the corrupt records set aside, with why and when."""
    client = connect(args)
    try:
        records = listed_jobs(open_queue(args, client, args.queue), "quarantine", args.limit)
    finally:
        client.close()
    if args.json:
        print_json({"queue": args.queue, "quarantine": records})
        return EXIT_OK
    print(f"{len(records)} quarantined record(s) on {args.queue}")
    for record in records:
        if isinstance(record, UnreadableRecord):
            when = quarantined_when(record)
            print(f"{record.id}  {len(record.record)} bytes  {when}  {record.note or ''}")
        else:
            print(f"{record.id}  readable now ({record.state.value})")
    return EXIT_OK


def run_quarantine_purge(args: argparse.Namespace) -> int:
    """``quarantine purge``: delete the given quarantined records, or the oldest ``--limit``,
    for good."""
    check_id_count(args)
    client = connect(args)
    try:
        queue = open_queue(args, client, args.queue)
        statuses = queue.purge_quarantine(args.job_ids, limit=args.limit)
    finally:
        client.close()
    return print_statuses(args, statuses, "purged")


def print_statuses(args: argparse.Namespace, statuses: Sequence[ItemStatus], done: str) -> int:
    """One line per item; exit 1 (with one line on stderr) when any item was refused."""
    for item in statuses:
        print(f"{item.id} {done if item.status is Status.OK else item.status.value}")
    accepted = sum(1 for s in statuses if s.status is Status.OK)
    print(f"{accepted} job(s) {done}", flush=True)
    if accepted == len(statuses):
        return EXIT_OK
    say(f"{PROG} {command_name(args)}", f"{len(statuses) - accepted} job(s) refused (see above)")
    return EXIT_ERROR


def check_id_count(args: argparse.Namespace) -> None:
    """Refuse more JOB_IDs than one call takes."""
    if len(args.job_ids) > MAX_BATCH:
        raise UsageError(f"at most {MAX_BATCH} JOB_IDs at a time, not {len(args.job_ids)}")


def run_dead_requeue(args: argparse.Namespace) -> int:
    """``dead requeue``: the given dead jobs, or the oldest ``--limit``, back to waiting."""
    check_id_count(args)
    client = connect(args)
    try:
        statuses = open_queue(args, client, args.queue).requeue(args.job_ids, limit=args.limit)
    finally:
        client.close()
    return print_statuses(args, statuses, "requeued")


def run_dead_purge(args: argparse.Namespace) -> int:
    """``dead purge``: delete the given dead jobs, or the oldest ``--limit``, for good."""
    check_id_count(args)
    client = connect(args)
    try:
        queue = open_queue(args, client, args.queue)
        statuses = queue.purge(State.DEAD, args.job_ids, limit=args.limit)
    finally:
        client.close()
    return print_statuses(args, statuses, "purged")
