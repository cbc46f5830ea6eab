"""A worker process for the fault tests, recording everything it does to a history:
``python -m tests.faults.agent --url URL --queue Q --history DIR --name NAME [options]``.

Two modes:

* ``worker`` (default): the package's thread :class:`~scheduler.worker.Worker` on a
  :class:`~tests.faults.recorder.RecordingQueue`, with a recorded handler. With
  ``--kill-at POINT --kill-after N``, the process kills itself with SIGKILL the N-th time it
  reaches POINT (``before_effect``, ``during_effect``, ``after_effect``, ``before_ack``,
  ``after_ack``), writing a ``fault`` record first;
* ``plain``: a bare loop on the client (claim one job, run its side effect, complete it), with
  no heartbeat and no lease bookkeeping: a stopped and resumed process of this kind sends its
  completion whatever happened meanwhile, so the test sees Redis refuse it.

SIGTERM stops either mode gracefully: in ``worker`` mode, running jobs get ``--grace-s``
seconds, then are handed back. ``--max-payload-bytes`` sets the size cap of the agent's client
(a payload over it cannot be decoded here). A job's payload can ask the handler for a longer
side effect or an unencodable result (:class:`~tests.faults.recorder.RecordingHandler`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import threading

import redis

from scheduler import LeaseLost
from scheduler.worker import Worker
from tests.faults.history import HistoryWriter
from tests.faults.recorder import RecordingHandler, RecordingQueue

KILL_POINTS = ("before_effect", "during_effect", "after_effect", "before_ack", "after_ack")


class KillSwitch:
    """A hook that kills this process the ``after``-th time it reaches ``point``."""

    def __init__(self, writer: HistoryWriter, name: str, point: str | None, after: int) -> None:
        self.writer, self.name, self.point, self.after = writer, name, point, after
        self._seen = 0
        self._lock = threading.Lock()

    def __call__(self, point: str) -> None:
        """Count ``point``; at the chosen one, record the fault and SIGKILL this process."""
        if point != self.point:
            return
        with self._lock:
            self._seen += 1
            if self._seen != self.after:
                return
            self.writer.write(self.name, "fault", "kill", target=self.name, status=point)
            os.kill(os.getpid(), signal.SIGKILL)


def run_plain(queue: RecordingQueue, writer: HistoryWriter, args: argparse.Namespace) -> None:
    """Claim one job at a time, run it, complete it; until SIGTERM."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.is_set():
        try:
            jobs = queue.claim(args.name, lease_ms=args.lease_ms).jobs
        except redis.RedisError:
            stop.wait(0.05)
            continue
        if not jobs:
            stop.wait(0.02)
            continue
        job = jobs[0]
        writer.write(args.name, "effect_start", "effect", job_id=job.id, token=job.token)
        threading.Event().wait(args.effect_ms / 1000)
        writer.write(args.name, "effect_end", "effect", job_id=job.id, token=job.token)
        with contextlib.suppress(LeaseLost, redis.RedisError):  # recorded either way
            queue.complete(job, job.payload)


def run_worker(queue: RecordingQueue, writer: HistoryWriter, args: argparse.Namespace) -> None:
    """The package's Worker with a recorded handler; until SIGTERM."""
    kill = KillSwitch(writer, args.name, args.kill_at, args.kill_after)
    queue.hook = kill
    handler = RecordingHandler(writer, args.name, args.effect_ms / 1000, hook=kill)
    worker = Worker(
        queue,
        handler,
        concurrency=args.concurrency,
        worker_id=args.name,
        lease_ms=args.lease_ms,
        grace_s=args.grace_s,
        max_idle_s=1,
    )
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    worker.run()


def main() -> None:
    """Parse the arguments and run the chosen mode."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--history", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--mode", choices=("worker", "plain"), default="worker")
    parser.add_argument("--lease-ms", type=int, default=1000)
    parser.add_argument("--effect-ms", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--kill-at", choices=KILL_POINTS, default=None)
    parser.add_argument("--kill-after", type=int, default=1)
    parser.add_argument("--grace-s", type=float, default=5.0)
    parser.add_argument("--max-payload-bytes", type=int, default=1024 * 1024)
    args = parser.parse_args()
    writer = HistoryWriter(args.history, args.name)
    client = redis.Redis.from_url(args.url, socket_timeout=2, socket_connect_timeout=1)
    queue = RecordingQueue(
        client,
        args.queue,
        history=writer,
        process=args.name,
        max_payload_bytes=args.max_payload_bytes,
    )
    writer.write(args.name, "fault", "start", target=args.name)
    if args.mode == "plain":
        run_plain(queue, writer, args)
    else:
        run_worker(queue, writer, args)


if __name__ == "__main__":
    main()
