"""The history of a fault run: every operation a client invoked and how it ended, every side
effect a handler began and finished, and every fault the test injected.

Each OS process appends to a file of its own (``<label>-<pid>.jsonl`` in the run's folder), one
JSON object per line written with a single ``write`` on a file opened for appending, so a
process killed with SIGKILL loses nothing it wrote and never leaves another's lines torn.
:func:`read_history` merges every file of the folder, ordered by time.

A record (:class:`Record`) is flat:

* ``t``: wall-clock seconds (``time.time()``; every process runs on this one machine);
* ``process``: the logical participant (``worker-1``, ``producer``, ``test``);
* ``kind``: ``invoke``, ``ok``, ``fail`` (a definite refusal: nothing changed), ``unknown`` (the
  reply was lost: the call may or may not have run), ``effect_start``, ``effect_end`` or
  ``fault``;
* ``op``: ``enqueue``, ``claim``, ``complete``, ``fail``, ``heartbeat``, ``release``, ``reap``,
  ``effect``, or the fault's name (``kill``, ``stop``, ``cont``, ``restart``, ``freeze``, ...);
* ``call``: pairs an ``invoke`` with its outcome (unique within a process);
* ``job_id``, ``token``: the job and lease concerned (a batch call writes one record per item;
  a claim's invoke has none, its ``ok`` one per job leased);
* ``status``: the item's outcome (``ok``, ``duplicate``, ``lease_lost``, ``created``,
  ``exists``, ``retry``, ``dead``, ``lost``, ``empty``); ``error``: the error's type and text;
* ``target``: for a fault, the participant it hit;
* ``detail``: for a fault that marks a job (``poison``, ``unencodable``, ``overrun``,
  ``corrupt``, ``newer``: the job must end otherwise than completed), what its end must show:
  a text its last error must contain, or the record bytes planted, in hex.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

KINDS = ("invoke", "ok", "fail", "unknown", "effect_start", "effect_end", "fault")
"""Every record kind, in the order a reader meets them for one call."""


@dataclass(frozen=True, slots=True)
class Record:
    """One line of a history (see the module docstring for each field)."""

    t: float
    process: str
    kind: str
    op: str
    call: int = 0
    job_id: str | None = None
    token: str | None = None
    status: str | None = None
    error: str | None = None
    target: str | None = None
    detail: str | None = None

    def to_json(self) -> str:
        """The record as one JSON line (without the newline), empty fields left out."""
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None})


class HistoryWriter:
    """Appends records to this process's file of a run folder; safe to share between threads.

    Args:
        folder: the run's folder (created if missing).
        label: the first part of the file name (the process's role).
    """

    def __init__(self, folder: str | Path, label: str) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / f"{label}-{os.getpid()}.jsonl"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._lock = threading.Lock()
        self._calls = itertools.count(1)

    def new_call(self) -> int:
        """A call number not used before in this process."""
        return next(self._calls)

    def write(self, process: str, kind: str, op: str, **fields: Any) -> Record:
        """Append one record, stamped now; returns it."""
        if kind not in KINDS:
            raise ValueError(f"unknown record kind {kind!r}")
        record = Record(time.time(), process, kind, op, **fields)
        line = (record.to_json() + "\n").encode()
        with self._lock:
            os.write(self._fd, line)
        return record

    def close(self) -> None:
        """Close the file (records already written stay)."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def parse_lines(lines: list[str]) -> list[Record]:
    """Records from JSON lines; a torn last line (a write cut by SIGKILL) is skipped."""
    records = []
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(Record(**json.loads(line)))
        except (json.JSONDecodeError, TypeError):
            if n != len(lines) - 1:
                raise
    return records


def read_history(folder: str | Path) -> list[Record]:
    """Every record of every file in ``folder``, ordered by time."""
    records: list[Record] = []
    for path in sorted(Path(folder).glob("*.jsonl")):
        records += parse_lines(path.read_text().splitlines())
    return sorted(records, key=lambda r: r.t)
