"""scheduler: a Redis job queue where every state change is one atomic Lua script.

Jobs are leased to workers with fencing tokens, every call is safe to repeat, and a dead
worker's jobs come back within ``lease + reaper interval``. See README.md.
"""

from ._models import (
    ActiveJob,
    Claimed,
    Enqueued,
    Failed,
    Heartbeat,
    ItemStatus,
    Job,
    JobInfo,
    JobOptions,
    JobSpec,
    QueueStats,
    Reaped,
    Retention,
    UnreadableRecord,
)
from ._server_checks import check_server
from ._status import Outcome, State, Status, Unreadable
from ._worker_context import JobContext, NonRetryable
from .aio import AsyncQueue
from .aio_worker import AsyncWorker
from .client import Queue
from .connection import connect, connect_async
from .errors import (
    ConfigError,
    DuplicateJob,
    InvalidState,
    JobError,
    JobNotFound,
    LeaseLost,
    PayloadError,
    RecordUnreadable,
    SchedulerError,
    ScriptError,
    ServerFull,
    ValidationError,
    WorkerCrashed,
)
from .sharded import AsyncShardedQueue, ShardedQueue
from .tasks import TaskRegistry, current_job
from .worker import Worker

__all__ = [
    "ActiveJob",
    "AsyncQueue",
    "AsyncShardedQueue",
    "AsyncWorker",
    "Claimed",
    "ConfigError",
    "DuplicateJob",
    "Enqueued",
    "Failed",
    "Heartbeat",
    "InvalidState",
    "ItemStatus",
    "Job",
    "JobContext",
    "JobError",
    "JobInfo",
    "JobNotFound",
    "JobOptions",
    "JobSpec",
    "LeaseLost",
    "NonRetryable",
    "Outcome",
    "PayloadError",
    "Queue",
    "QueueStats",
    "Reaped",
    "RecordUnreadable",
    "Retention",
    "SchedulerError",
    "ScriptError",
    "ServerFull",
    "ShardedQueue",
    "State",
    "Status",
    "TaskRegistry",
    "Unreadable",
    "UnreadableRecord",
    "ValidationError",
    "Worker",
    "WorkerCrashed",
    "check_server",
    "connect",
    "connect_async",
    "current_job",
]
__version__ = "0.1.0"
