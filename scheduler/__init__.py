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
)
from ._server_checks import check_server
from ._status import Outcome, State, Status
from .client import Queue
from .errors import (
    ConfigError,
    DuplicateJob,
    InvalidState,
    JobError,
    JobNotFound,
    LeaseLost,
    PayloadError,
    SchedulerError,
    ScriptError,
    ServerFull,
    ValidationError,
    WorkerCrashed,
)

__all__ = [
    "ActiveJob",
    "Claimed",
    "ConfigError",
    "DuplicateJob",
    "Enqueued",
    "Failed",
    "Heartbeat",
    "InvalidState",
    "ItemStatus",
    "Job",
    "JobError",
    "JobInfo",
    "JobNotFound",
    "JobOptions",
    "JobSpec",
    "LeaseLost",
    "Outcome",
    "PayloadError",
    "Queue",
    "QueueStats",
    "Reaped",
    "Retention",
    "SchedulerError",
    "ScriptError",
    "ServerFull",
    "State",
    "Status",
    "ValidationError",
    "WorkerCrashed",
    "check_server",
]
__version__ = "0.1.0"
