"""Run N worker processes and keep them running: :class:`Supervisor`.

Each child runs ``target(*args)`` in a fresh interpreter (the ``spawn`` start method, so
``target`` must be a picklable module-level callable and ``args`` picklable values). A child that
dies unexpectedly (a non-zero exit code while the supervisor is not stopping, e.g. after SIGKILL
or a crash) is started again by :meth:`Supervisor.poll`, at most ``processes`` restarts in any
10 s window: past that the supervisor logs an error and stops restarting (a child that cannot
start would otherwise be restarted in a tight loop). A child that exits with code 0 has finished
and is not restarted.

:meth:`Supervisor.stop` sends SIGTERM to every child (a worker's graceful stop), waits for them
within the grace period and SIGKILLs what is left; :meth:`Supervisor.kill` SIGKILLs them at once.

    supervisor = Supervisor(run_worker_process, 3, args=(url,), grace_s=30)
    supervisor.start()
    while supervisor.poll():  # restarts the dead; the number of children alive
        time.sleep(0.1)
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Any

logger = logging.getLogger("scheduler.supervisor")

RESTART_WINDOW_S = 10.0
"""The window of the restart budget: at most ``processes`` restarts within this many seconds."""
KILL_WAIT_S = 5.0
"""After SIGKILL, how long to wait for a child to be reaped."""


class Supervisor:
    """Run ``processes`` children of ``target(*args)`` and restart those that die (see the module).

    Args:
        target: a picklable module-level callable, run in each child.
        processes: how many children run at once (at least 1).
        args: the positional arguments of ``target`` (picklable).
        restart: restart a child that dies unexpectedly (False: leave it dead).
        grace_s: on :meth:`stop`, how long children may take to exit after SIGTERM.
        max_restarts: the restart budget per :data:`RESTART_WINDOW_S` (default: ``processes``).
        name: the children's process names are ``<name>-<slot>``.
    """

    def __init__(
        self,
        target: Callable[..., object],
        processes: int,
        *,
        args: tuple[Any, ...] = (),
        restart: bool = True,
        grace_s: float = 30.0,
        max_restarts: int | None = None,
        name: str = "worker",
    ) -> None:
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self.target = target
        self.processes = processes
        self.args = args
        self.restart = restart
        self.grace_s = grace_s
        self.max_restarts = processes if max_restarts is None else max_restarts
        self.name = name
        self.restarts = 0
        """How many children were restarted so far."""
        self.stopping = False
        self._context = multiprocessing.get_context("spawn")
        self._children: list[BaseProcess | None] = [None] * processes
        self._restart_times: deque[float] = deque()
        self._gave_up = False

    # -- public --------------------------------------------------------------------------------

    def start(self) -> None:
        """Start every child."""
        for slot in range(self.processes):
            self._spawn(slot)

    @property
    def pids(self) -> list[int]:
        """The pids of the children alive now, by slot."""
        return [
            child.pid
            for child in self._children
            if child is not None and child.pid is not None and child.is_alive()
        ]

    def poll(self) -> int:
        """Restart the children that died unexpectedly (within the restart budget); return how
        many children are alive."""
        for slot, child in enumerate(self._children):
            if child is None or child.is_alive():
                continue
            child.join(0)
            code = child.exitcode
            self._children[slot] = None
            if code == 0 or self.stopping:
                logger.info("%s (pid %s) exited with code %s", child.name, child.pid, code)
                continue
            logger.warning("%s (pid %s) died with exit code %s", child.name, child.pid, code)
            if self._may_restart():
                self.restarts += 1
                self._spawn(slot)
        return sum(1 for child in self._children if child is not None and child.is_alive())

    def stop(self, grace_s: float | None = None) -> list[int]:
        """SIGTERM every child, wait for them within the grace period (default: ``grace_s``),
        SIGKILL what is left; returns the pids that had to be killed. No restarts after this."""
        self.stopping = True
        grace = self.grace_s if grace_s is None else grace_s
        children = self._alive()
        for child in children:
            self._signal(child, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in children:
            child.join(max(0.0, deadline - time.monotonic()))
        killed = [child.pid for child in children if child.is_alive() and child.pid is not None]
        if killed:
            logger.warning("children %s still running after %.1fs: killing them", killed, grace)
        self.kill()
        return killed

    def kill(self) -> None:
        """SIGKILL every child at once and reap them. No restarts after this."""
        self.stopping = True
        children = self._alive()
        for child in children:
            self._signal(child, signal.SIGKILL)
        for child in children:
            child.join(KILL_WAIT_S)
        self._children = [None] * self.processes

    # -- internals -----------------------------------------------------------------------------

    def _spawn(self, slot: int) -> None:
        child = self._context.Process(
            target=self.target, args=self.args, name=f"{self.name}-{slot}", daemon=False
        )
        child.start()
        self._children[slot] = child
        logger.info("started %s (pid %s)", child.name, child.pid)

    def _may_restart(self) -> bool:
        """True when a restart is allowed now (and records it); logs once when giving up."""
        if not self.restart or self._gave_up:
            return False
        now = time.monotonic()
        while self._restart_times and now - self._restart_times[0] > RESTART_WINDOW_S:
            self._restart_times.popleft()
        if len(self._restart_times) >= self.max_restarts:
            self._gave_up = True
            logger.error(
                "%d restarts within %.0fs: not restarting any more children",
                len(self._restart_times),
                RESTART_WINDOW_S,
            )
            return False
        self._restart_times.append(now)
        return True

    def _alive(self) -> list[BaseProcess]:
        return [child for child in self._children if child is not None and child.is_alive()]

    @staticmethod
    def _signal(child: BaseProcess, signum: int) -> None:
        if child.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signum)
