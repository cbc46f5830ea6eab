"""Named tasks: a job carries a task name and msgpack-able arguments, and a worker dispatches by
name, as with Celery, Dramatiq or arq.

    tasks = TaskRegistry()

    @tasks.task
    def send_email(to: str, subject: str = "hello") -> str:
        ...

    send_email.enqueue(queue, "ada@example.com", subject="welcome")
    Worker(queue, tasks.handler).run()

A job's payload is ``{"task": name, "args": [...], "kwargs": {...}}``. An unknown task name, or
arguments that do not fit the function, fail the job at once with a non-retryable error (it goes
to the dead letters with the reason) instead of crashing the worker. Inside a task,
:func:`current_job` gives the running job's :class:`~scheduler.worker.JobContext`, whose
``cancelled`` flag a long task should look at.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Generic, ParamSpec, TypeVar, overload

from ._models import Enqueued, Job, JobOptions
from .client import Queue
from .errors import ConfigError
from .worker import JobContext, NonRetryable

P = ParamSpec("P")
R = TypeVar("R")

_current: ContextVar[JobContext | None] = ContextVar("scheduler_current_job", default=None)


class UnknownTask(NonRetryable):
    """The job names a task this worker does not know."""


class BadArguments(NonRetryable):
    """The job's payload is not a task message, or its arguments do not fit the function."""


def current_job() -> JobContext:
    """The context of the job running in this thread (or task); only valid inside a task."""
    context = _current.get()
    if context is None:
        raise RuntimeError("current_job() is only available while a task runs")
    return context


class Task(Generic[P, R]):
    """A function registered under a name; calling it runs it here, ``enqueue`` sends a job."""

    def __init__(self, fn: Callable[P, R], name: str, options: JobOptions | None) -> None:
        self.fn = fn
        self.name = name
        self.options = options
        self.signature = inspect.signature(fn)
        self.__doc__ = fn.__doc__

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def message(self, *args: P.args, **kwargs: P.kwargs) -> dict[str, Any]:
        """The payload of a job that runs this task with these arguments (checked now)."""
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise BadArguments(f"task {self.name}: {exc}") from None
        return {"task": self.name, "args": list(args), "kwargs": dict(kwargs)}

    def enqueue(self, queue: Queue, *args: P.args, **kwargs: P.kwargs) -> Enqueued:
        """Enqueue a job running this task with these arguments, with the task's options."""
        return queue.enqueue(self.message(*args, **kwargs), options=self.options)

    def enqueue_with(
        self,
        queue: Queue,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        id: str | None = None,
        options: JobOptions | None = None,
    ) -> Enqueued:
        """Enqueue with a job id (idempotent) and options of its own."""
        payload = self.message(*args, **(kwargs or {}))
        return queue.enqueue(payload, id=id, options=options or self.options)


class TaskRegistry:
    """The tasks a worker can run, by name."""

    def __init__(self) -> None:
        self.tasks: dict[str, Task[Any, Any]] = {}

    @overload
    def task(self, fn: Callable[P, R]) -> Task[P, R]: ...

    @overload
    def task(
        self, *, name: str | None = None, options: JobOptions | None = None
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(
        self,
        fn: Callable[P, R] | None = None,
        *,
        name: str | None = None,
        options: JobOptions | None = None,
    ) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
        """Register a function as a task: ``@tasks.task`` or ``@tasks.task(name=..., options=...)``.

        The default name is ``module.qualname``.
        """

        def register(function: Callable[P, R]) -> Task[P, R]:
            task_name = name or f"{function.__module__}.{function.__qualname__}"
            if task_name in self.tasks:
                raise ConfigError(f"a task named {task_name!r} is registered already")
            task = Task(function, task_name, options)
            self.tasks[task_name] = task
            return task

        return register(fn) if fn is not None else register

    def handler(self, job: Job, context: JobContext) -> Any:
        """The worker handler: run the task the job names with the job's arguments."""
        payload = job.payload
        if not isinstance(payload, dict) or not isinstance(payload.get("task"), str):
            raise BadArguments("the payload is not a task message ({'task', 'args', 'kwargs'})")
        task = self.tasks.get(payload["task"])
        if task is None:
            raise UnknownTask(f"no task named {payload['task']!r} on this worker")
        args, kwargs = payload.get("args", []), payload.get("kwargs", {})
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise BadArguments(f"task {task.name}: args must be a list and kwargs a map")
        try:
            task.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise BadArguments(f"task {task.name}: {exc}") from None
        token = _current.set(context)
        try:
            return task.fn(*args, **kwargs)
        finally:
            _current.reset(token)
