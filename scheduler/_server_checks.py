"""Checks of the Redis server a queue runs on: what would silently break the guarantees.

:func:`check_server` returns (and logs as warnings) what to fix; it never refuses to run,
because managed services often forbid ``CONFIG`` (or ``INFO``) and distributions backport fixes
without changing the version string. A check that the server does not allow is reported as such,
and the others still run.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
import redis.cluster

logger = logging.getLogger("scheduler")

MINIMUM_VERSION = (7, 0)
"""The oldest Redis the scripts run on (``#!lua flags=...`` needs 7.0)."""

RECOMMENDED_VERSION = (7, 2)
"""The Redis we recommend: script time is frozen for the whole script, and WAITAOF exists."""


def parse_version(text: str) -> tuple[int, ...]:
    """``"7.0.15"`` -> ``(7, 0)``: the major and minor numbers of a version string."""
    numbers: list[int] = []
    for part in text.split(".")[:2]:
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers)


def version_warning(version: str) -> str | None:
    """The warning for a server of ``version``, or None when it is recent enough."""
    parsed = parse_version(version)
    if parsed < MINIMUM_VERSION:
        return f"Redis {version} is older than 7.0, which the scripts need; use 7.2 or later"
    if parsed < RECOMMENDED_VERSION:
        return (
            f"Redis {version}: 7.2 or later is recommended (script time is frozen for the "
            "whole script, WAITAOF exists)"
        )
    return None


def persistence_warning(appendonly: str | None, save: str | None) -> str | None:
    """The warning when neither AOF nor any RDB save point is configured, else None."""
    if appendonly == "yes" or (save or "").strip():
        return None
    return "persistence is off (no AOF, no RDB saves): a restart loses every job"


def _config(client: redis.Redis, name: str) -> str | None:
    """One ``CONFIG GET`` value as text; None when the server refuses ``CONFIG``."""
    try:
        reply: dict[Any, Any] = client.config_get(name)
    except redis.ResponseError:  # unknown or renamed command, or NOPERM (an ACL)
        return None
    value = reply.get(name)
    return None if value is None else str(value)


def _server_version(client: redis.Redis) -> str | None:
    """The ``redis_version`` of ``INFO server``; None when the server refuses ``INFO``."""
    try:
        info: dict[str, Any] = client.info("server")
    except redis.ResponseError:
        return None
    version = info.get("redis_version")
    return None if version is None else str(version)


def _config_warnings(client: redis.Redis) -> list[str]:
    """Warnings about the eviction policy and persistence, read with ``CONFIG GET``."""
    policy = _config(client, "maxmemory-policy")
    if policy is None:
        return [
            "CONFIG GET is not allowed (a managed Redis?): could not check maxmemory-policy "
            "or persistence; make sure the policy is noeviction and AOF is on"
        ]
    warnings: list[str] = []
    if policy != "noeviction":
        warnings.append(f"maxmemory-policy is {policy}: Redis may evict jobs; set it to noeviction")
    persistence = persistence_warning(_config(client, "appendonly"), _config(client, "save"))
    if persistence is not None:
        warnings.append(persistence)
    return warnings


def check_server(client: redis.Redis | redis.cluster.RedisCluster) -> list[str]:
    """Warnings about the server behind ``client``: eviction policy, persistence, version.

    Each warning is also logged on the ``scheduler`` logger. An empty list means nothing to fix.
    A server that refuses ``CONFIG GET`` or ``INFO`` gets a warning saying what could not be
    checked; the other checks still run. Connection errors from redis-py pass through. On a
    Redis Cluster every primary is checked, and each warning names its node.
    """
    if isinstance(client, redis.cluster.RedisCluster):
        warnings: list[str] = []
        for node in client.get_primaries():  # type: ignore[no-untyped-call]
            node_client = client.get_redis_connection(node)
            warnings.extend(f"{node.name}: {text}" for text in _node_warnings(node_client))
    else:
        warnings = _node_warnings(client)
    for text in warnings:
        logger.warning("%s", text)
    return warnings


def _node_warnings(client: redis.Redis) -> list[str]:
    """The warnings about one server."""
    version = _server_version(client)
    warnings: list[str] = []
    if version is None:
        warnings.append("INFO is not allowed: could not check the Redis version (7.2+ advised)")
    else:
        too_old = version_warning(version)
        if too_old is not None:
            warnings.append(too_old)
    warnings.extend(_config_warnings(client))
    return warnings
