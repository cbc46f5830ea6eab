"""``worker MODULE:APP``: run the tasks of a :class:`~scheduler.tasks.TaskRegistry` on one or
more queues until SIGTERM or SIGINT.

Sync tasks run on the thread-pool :class:`~scheduler.worker.Worker` (one per queue, each on a
thread of its own); when every task is a coroutine function, :class:`AsyncWorker` runs them on
one event loop. The first signal stops claiming, lets running jobs finish within ``--grace-s``
and hands back the rest; a second signal exits at once (exit code 1).

With ``--processes N`` (N > 1) the process runs no worker itself: a
:class:`~scheduler.supervisor.Supervisor` runs the same single-process worker in N child
processes and restarts one that dies; the first signal is forwarded to the children as SIGTERM
(their graceful stop) and the command exits 0 once they have exited; a second signal kills them
at once (exit code 1).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import inspect
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis
import redis.asyncio

from ._cli_common import (
    DEFAULT_QUEUE,
    EXIT_ERROR,
    EXIT_OK,
    UsageError,
    connect,
    int_in,
    open_queue,
    queue_name,
    seconds_in,
    setup_logging,
    worker_id,
)
from ._models import Job
from ._server_checks import check_server
from ._validate import MAX_BATCH, MAX_MS
from .aio import AsyncQueue
from .aio_worker import AsyncWorker
from .supervisor import Supervisor
from .tasks import TaskRegistry, _current
from .worker import JobContext, Worker

Subparsers = Any  # argparse's _SubParsersAction, private in typeshed
logger = logging.getLogger("scheduler.cli")
WORKER_HELP = """\
Run the tasks of MODULE:APP, a scheduler.tasks.TaskRegistry, on the --queue queues.

Plain (sync) tasks run on the thread-pool Worker, one per queue, each on a thread of its own;
when every task is a coroutine function, AsyncWorker runs them on one event loop (an app that
mixes the two is refused). The first SIGTERM/SIGINT stops claiming, lets running jobs finish
within --grace-s and hands back the rest (exit 0); a second signal exits at once (exit 1).
With --processes N (N > 1), N child processes each run that worker, and a dead one is restarted;
the first signal stops them gracefully (exit 0 once they have exited), a second kills them.
Logs go to stderr.
"""
MAX_CONCURRENCY = 1000
"""The most jobs at once per queue the command line takes (a thread each for sync tasks)."""
MAX_PROCESSES = 256
"""The most worker processes ``--processes`` takes."""
DAY_S = 86_400.0
LEFTOVER_WAIT_S = 2.0
"""After the workers stop, how long job threads that ignore their cancel flag may take before
the process exits without them (their jobs were handed back already)."""
SUPERVISOR_MARGIN_S = 5.0
"""With --processes: beyond --grace-s and LEFTOVER_WAIT_S, how long a child may take to exit
after SIGTERM before it is killed."""
ALL_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
CHILD_STOP_SIGNALS = (signal.SIGTERM,)
"""A child of --processes ignores SIGINT: Ctrl-C reaches the whole process group, and the parent
forwards it as SIGTERM (so one Ctrl-C is one graceful stop, not two signals)."""


def add_worker_command(commands: Subparsers, common: argparse.ArgumentParser) -> None:
    """Register ``worker`` on ``commands``."""
    parser = commands.add_parser(
        "worker",
        parents=[common],
        help="run the tasks of MODULE:APP (a TaskRegistry) until SIGTERM/SIGINT",
        description=WORKER_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("app", metavar="MODULE:APP", help="e.g. myproject.tasks:tasks")
    parser.add_argument(
        "--queue",
        action="append",
        type=queue_name,
        default=[],
        help=f"a queue to work on (repeatable: a worker per queue; default: {DEFAULT_QUEUE})",
    )
    parser.add_argument(
        "--concurrency",
        type=int_in(1, MAX_CONCURRENCY),
        default=None,
        help="jobs at once per queue (default 4; 16 async)",
    )
    parser.add_argument(
        "--prefetch",
        type=int_in(0, MAX_BATCH),
        default=None,
        help="thread workers: jobs leased ahead of a free thread (default: = concurrency)",
    )
    parser.add_argument(
        "--lease-ms",
        type=int_in(1, MAX_MS),
        default=None,
        help="lease per claim (default: the job's)",
    )
    parser.add_argument(
        "--grace-s", type=seconds_in(0, DAY_S), default=30.0, help="on stop, time to finish"
    )
    parser.add_argument(
        "--time-limit-ms", type=int_in(1, MAX_MS), default=None, help="fail longer jobs"
    )
    parser.add_argument(
        "--worker-id", type=worker_id, default=None, help="the name the monitor shows"
    )
    parser.add_argument(
        "--max-idle-s",
        type=seconds_in(0, DAY_S, low_open=True),
        default=5.0,
        help="longest idle wait",
    )
    parser.add_argument(
        "--processes",
        type=int_in(1, MAX_PROCESSES),
        default=1,
        help="worker processes, supervised (default 1)",
    )
    parser.set_defaults(run=run_worker)


def load_app(spec: str) -> TaskRegistry:
    """The TaskRegistry ``APP`` (a dotted attribute path) of module ``MODULE``."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise UsageError(f"{spec!r}: give the app as MODULE:APP, e.g. myproject.tasks:tasks")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does, for the console script too
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import {module_name!r}: {exc}") from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise UsageError(f"module {module_name!r} has no {attribute!r}")
        target = getattr(target, part)
    if not isinstance(target, TaskRegistry):
        raise UsageError(f"{spec} is a {type(target).__name__}, not a TaskRegistry")
    return target


def is_async_app(app: TaskRegistry) -> bool:
    """True when every task is a coroutine function, False when none is; else a UsageError."""
    if not app.tasks:
        raise UsageError("the TaskRegistry has no tasks")
    kinds = {inspect.iscoroutinefunction(task.fn) for task in app.tasks.values()}
    if len(kinds) > 1:
        raise UsageError("the app mixes coroutine and plain tasks; run them in two apps")
    return kinds == {True}


class Shutdown:
    """The SIGTERM/SIGINT handler: the first signal stops the workers (grace, hand-back), a
    second one exits at once."""

    def __init__(
        self,
        stop: Callable[[], None],
        grace_s: float,
        before_exit: Callable[[], None] | None = None,
    ) -> None:
        self.stop = stop
        self.grace_s = grace_s
        self.before_exit = before_exit
        self.count = 0

    def __call__(self, signum: int, frame: Any = None) -> None:
        self.count += 1
        name = signal.Signals(signum).name
        if self.count == 1:
            logger.warning(
                "%s: stopping; running jobs get %.1fs, then are handed back (again: exit now)",
                name,
                self.grace_s,
            )
            self.stop()
            return
        logger.error("%s again: exiting at once; unfinished leases expire on their own", name)
        if self.before_exit is not None:
            self.before_exit()
        exit_now(EXIT_ERROR)


def exit_now(code: int) -> None:
    """Flush the output and logs, then end the process without waiting for any thread."""
    sys.stdout.flush()
    logging.shutdown()
    os._exit(code)


def worker_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of Worker and AsyncWorker from the command line."""
    options: dict[str, Any] = {
        "worker_id": args.worker_id,
        "lease_ms": args.lease_ms,
        "time_limit_ms": args.time_limit_ms,
        "grace_s": args.grace_s,
        "max_idle_s": args.max_idle_s,
    }
    if args.concurrency is not None:
        options["concurrency"] = args.concurrency
    if args.prefetch is not None:
        options["prefetch"] = args.prefetch
    return options


def run_worker(args: argparse.Namespace) -> int:
    """``worker``: run until a signal; exit 0 after a clean stop, 1 if a worker failed."""
    setup_logging(logging.INFO)
    app = load_app(args.app)
    queues = args.queue or [DEFAULT_QUEUE]
    async_app = is_async_app(app)
    if args.prefetch is not None and async_app:
        raise UsageError(
            "--prefetch applies to thread workers "
            "(an async worker takes more jobs with a higher --concurrency)"
        )
    if args.processes > 1:
        return run_supervised(args)
    if async_app:
        code = run_async_workers(args, app, queues)
    else:
        code = run_thread_workers(args, app, queues)
    leave_stuck_threads(code)
    return code


def log_failure(args: argparse.Namespace, worker_id: str, exc: BaseException) -> None:
    """Log a worker's failure on one line (with its traceback under ``--debug``)."""
    logger.error(
        "worker %s failed: %s: %s; the other queues' workers go on",
        worker_id,
        type(exc).__name__,
        exc,
        exc_info=args.debug,
    )


def run_thread_workers(args: argparse.Namespace, app: TaskRegistry, queues: list[str]) -> int:
    """One thread-pool Worker per queue, each run on a thread; the main thread waits for
    signals."""
    client = connect(args)
    workers = [
        Worker(open_queue(args, client, name), app.handler, **worker_options(args))
        for name in queues
    ]
    failures: list[BaseException] = []

    def stop_all() -> None:
        for worker in workers:
            worker.stop()

    def run(worker: Worker) -> None:
        try:
            worker.run()
        except BaseException as exc:
            # The other queues' workers go on: the process serves them until it is stopped,
            # then exits non-zero so that a supervisor restarts it.
            log_failure(args, worker.worker_id, exc)
            failures.append(exc)

    install_signal_handlers(Shutdown(stop_all, args.grace_s), stop_signals(args))
    threads = [
        threading.Thread(target=run, args=(w,), name=f"worker-{w.queue.name}") for w in workers
    ]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        for thread in threads:
            thread.join(0.2)
    client.close()
    return EXIT_ERROR if failures else EXIT_OK


def install_signal_handlers(
    handler: Shutdown, signals: Sequence[signal.Signals] = ALL_STOP_SIGNALS
) -> None:
    """``signals`` (default SIGTERM and SIGINT) to ``handler`` (in the main thread)."""
    for signum in signals:
        signal.signal(signum, handler)


def stop_signals(args: argparse.Namespace) -> Sequence[signal.Signals]:
    """The signals that stop this worker: SIGTERM only in a child of --processes."""
    return CHILD_STOP_SIGNALS if getattr(args, "child", False) else ALL_STOP_SIGNALS


class StopRequest:
    """A flag a signal handler sets (a plain attribute: safe to set from a handler)."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> None:
        self.requested = True


def run_supervised(args: argparse.Namespace) -> int:
    """``--processes N``: N children run the single-process worker under a Supervisor; the
    first signal stops them with SIGTERM (exit 0 once they have exited, 1 if one had to be
    killed), a second kills them at once (exit 1)."""
    child_args = argparse.Namespace(**vars(args))
    child_args.processes = 1
    child_args.child = True
    supervisor = Supervisor(
        run_worker_process,
        args.processes,
        args=(child_args,),
        grace_s=args.grace_s + LEFTOVER_WAIT_S + SUPERVISOR_MARGIN_S,
    )
    request = StopRequest()
    install_signal_handlers(Shutdown(request, args.grace_s, before_exit=supervisor.kill))
    supervisor.start()
    logger.info("supervising %d worker processes: %s", args.processes, supervisor.pids)
    while not request.requested:
        if supervisor.poll() == 0:
            logger.error("every worker process has ended; exiting")
            return EXIT_ERROR
        time.sleep(0.1)  # a plain sleep: signal handlers run between two polls
    killed = supervisor.stop()
    return EXIT_ERROR if killed else EXIT_OK


def run_worker_process(args: argparse.Namespace) -> None:
    """A child of ``--processes``: the single-process worker, stopped by SIGTERM only (see
    :data:`CHILD_STOP_SIGNALS`); its exit code is the command's."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if args.worker_id:
        args.worker_id = f"{args.worker_id}-{os.getpid()}"
    from .cli import run  # the command's error handling; imported here: cli imports this module

    sys.exit(run(args))


def leave_stuck_threads(code: int) -> None:
    """Job threads still running after the stop (their handler ignores the cancel flag) would
    keep the process alive; their jobs were handed back, so exit without them."""
    deadline = time.monotonic() + LEFTOVER_WAIT_S
    while time.monotonic() < deadline:
        stuck = [
            t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon
        ]
        if not stuck:
            return
        stuck[0].join(0.1)
    logger.warning("%d job thread(s) ignore their cancel flag; exiting without them", len(stuck))
    exit_now(code)


def async_handler(app: TaskRegistry) -> Callable[[Job, JobContext], Any]:
    """The app's handler for AsyncWorker: runs the task's coroutine with current_job() set."""

    async def handle(job: Job, context: JobContext) -> Any:
        token = _current.set(context)
        try:
            return await app.handler(job, context)
        finally:
            _current.reset(token)

    return handle


def run_async_workers(args: argparse.Namespace, app: TaskRegistry, queues: list[str]) -> int:
    """One AsyncWorker per queue on one event loop."""
    with contextlib.suppress(redis.RedisError):
        sync_client = connect(args)
        check_server(sync_client)  # logs what to fix: eviction, persistence, version
        sync_client.close()
    return asyncio.run(_serve_async(args, app, queues))


async def _serve_async(args: argparse.Namespace, app: TaskRegistry, queues: list[str]) -> int:
    client = redis.asyncio.Redis.from_url(args.redis_url, socket_connect_timeout=5)
    handler = async_handler(app)
    workers = [
        AsyncWorker(AsyncQueue(client, name, prefix=args.prefix), handler, **worker_options(args))
        for name in queues
    ]

    def stop_all() -> None:
        for worker in workers:
            worker.stop()

    shutdown = Shutdown(stop_all, args.grace_s)
    loop = asyncio.get_running_loop()
    for signum in stop_signals(args):
        loop.add_signal_handler(signum, shutdown, signum)

    async def run(worker: AsyncWorker) -> bool:
        try:
            await worker.run()
        except Exception as exc:
            # As with thread workers: the others go on, and the exit code says it failed.
            log_failure(args, worker.worker_id, exc)
            return False
        return True

    try:
        results = await asyncio.gather(*(run(w) for w in workers))
    finally:
        await client.aclose()
    return EXIT_OK if all(results) else EXIT_ERROR
