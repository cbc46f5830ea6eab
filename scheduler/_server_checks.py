"""Checks of the Redis server a queue runs on: what would silently break the guarantees.

:func:`check_server` returns (and logs as warnings) what to fix; it never refuses to run,
because managed services often forbid ``CONFIG`` and distributions backport fixes without
changing the version string.
"""

from __future__ import annotations

import logging
from typing import Any

import redis

logger = logging.getLogger("scheduler")

MINIMUM_VERSION = (7, 0)
RECOMMENDED_VERSION = (7, 2)


def _version(info: dict[str, Any]) -> tuple[int, ...]:
    text = str(info.get("redis_version", "0"))
    return tuple(int(part) for part in text.split(".")[:2] if part.isdigit())


def _config(client: redis.Redis, name: str) -> str | None:
    try:
        value = client.config_get(name).get(name)
    except redis.ResponseError:
        return None
    return None if value is None else str(value)


def check_server(client: redis.Redis) -> list[str]:
    """Warnings about the server behind ``client``: eviction policy, persistence, version.

    Each warning is also logged on the ``scheduler`` logger. An empty list means nothing to fix.
    """
    warnings: list[str] = []
    info = client.info("server")
    version = _version(info)
    if version < MINIMUM_VERSION:
        warnings.append(
            f"Redis {info.get('redis_version')} is older than 7.0, which the scripts need"
        )
    elif version < RECOMMENDED_VERSION:
        warnings.append(
            f"Redis {info.get('redis_version')}: 7.2 or later is recommended (script time is "
            "frozen for the whole script, WAITAOF exists)"
        )
    policy = _config(client, "maxmemory-policy")
    if policy is None:
        warnings.append(
            "CONFIG GET is not allowed: could not check maxmemory-policy or persistence"
        )
    else:
        if policy != "noeviction":
            warnings.append(
                f"maxmemory-policy is {policy}: Redis may evict jobs; set it to noeviction"
            )
        if _config(client, "appendonly") != "yes" and not _config(client, "save"):
            warnings.append("persistence is off (no AOF, no RDB saves): a restart loses every job")
    for text in warnings:
        logger.warning("%s", text)
    return warnings
