"""The key schema: every Redis key of a queue, all under the queue's hash tag.

A queue ``emails`` with prefix ``scheduler`` owns exactly the keys ``scheduler:{emails}:<part>``
for the parts in :data:`KEY_PARTS`, so one queue always lives in one Redis Cluster slot. This
module is the only place that formats key names; scripts receive them all through KEYS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ConfigError

KEY_PARTS: tuple[str, ...] = (
    "meta",
    "payload",
    "result",
    "error",
    "ready",
    "delayed",
    "active",
    "running",
    "completed",
    "dead",
    "cancelled",
    "stubs",
    "quarantine",
    "unreadable",
    "seq",
    "requests",
    "request_exp",
    "wake",
    "clock",
)
"""Every key a queue owns; the names a script header gives its KEYS (``clock`` only in the
test build of the scripts, see :mod:`scheduler._scripts`)."""

QUEUE_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.\-]{1,64}(?::[0-9]{1,4})?")
PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")


def validate_queue_name(name: object) -> str:
    """Return ``name`` if it is a valid queue name, else raise :class:`ConfigError`.

    Allowed: 1 to 64 letters, digits, ``_``, ``.`` and ``-``, optionally followed by ``:`` and
    1-4 digits (shard ``i`` of a sharded queue is ``<name>:<i>``, see :mod:`scheduler.sharded`).
    A ``{`` or ``}`` would move the hash tag (``x:{a}b}:y`` hashes as ``a``), putting this
    queue's keys into another queue's slot.
    """
    if not isinstance(name, str) or not QUEUE_NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"invalid queue name {name!r}: use 1-64 letters, digits, '_', '.' or '-'"
            " (a shard adds ':<n>')"
        )
    return name


def validate_prefix(prefix: object) -> str:
    """Return ``prefix`` if valid (1-64 of letters, digits, ``_ . : -``), else raise."""
    if not isinstance(prefix, str) or not PREFIX_PATTERN.fullmatch(prefix):
        raise ConfigError(
            f"invalid key prefix {prefix!r}: use 1-64 letters, digits, '_', '.', ':' or '-'"
        )
    return prefix


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """The Redis keys of one queue."""

    prefix: str
    queue: str

    def __post_init__(self) -> None:
        validate_prefix(self.prefix)
        validate_queue_name(self.queue)

    @property
    def hash_tag(self) -> str:
        """The part of every key that Redis Cluster hashes: ``{queue}``."""
        return "{" + self.queue + "}"

    def key(self, part: str) -> str:
        """The full name of one of the queue's keys."""
        if part not in KEY_PARTS:
            raise ConfigError(f"unknown key part {part!r}")
        return f"{self.prefix}:{self.hash_tag}:{part}"

    def keys(self, parts: tuple[str, ...]) -> tuple[str, ...]:
        """The full names of several keys, in order (a script's KEYS)."""
        return tuple(self.key(part) for part in parts)
