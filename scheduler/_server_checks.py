"""Checks of the Redis server a queue runs on: what would silently break the guarantees.

:func:`check_server` returns (and logs as warnings) what to fix; it never refuses to run,
because managed services often forbid ``CONFIG`` (or ``INFO``) and distributions backport fixes
without changing the version string. A check that the server does not allow is reported as such,
and the others still run.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import redis
import redis.cluster

from ._keys import validate_prefix

logger = logging.getLogger("scheduler")

MINIMUM_VERSION = (7, 0)
"""The oldest Redis the scripts run on (``#!lua flags=...`` needs 7.0)."""

RECOMMENDED_VERSION = (7, 2)
"""The Redis we recommend: script time is frozen for the whole script, and WAITAOF exists."""

ACL_COMMANDS: tuple[str, ...] = (
    # what the scripts run (tests/unit/test_acl.py reads every redis.call in lua/ against this)
    "time", "get", "incrby", "hget", "hmget", "hset", "hdel", "hstrlen",
    "lpush", "ltrim", "zadd", "zcard", "zcount", "zrange", "zrangebyscore", "zrem",
    "zscore",
    # the clients: scripts by hash, loaded again after NOSCRIPT; an idle worker's wait
    "evalsha", "script|load", "blpop",
    # a URL with a database number (SELECT), doctor (PING), stats (SCAN), cluster clients
    "select", "ping", "scan", "cluster|slots", "command",
)  # fmt: skip
"""Every command the package sends (besides AUTH and HELLO, which every user may run).

Left out on purpose: ``INFO`` and ``CONFIG GET`` (``@dangerous``), which :func:`check_server`
and ``doctor`` use and do without, saying what they could not check; ``CLIENT SETINFO``, which
redis-py sends on connect and carries on without (and which Redis 7.0 does not know, so naming
it would make the rule fail there)."""


def acl_rule(prefix: str = "scheduler") -> str:
    """The ACL rules of a user that may run this package on the keys under ``prefix`` and
    nothing else: no ``@dangerous`` or ``@admin`` command, no other key, no channel."""
    validate_prefix(prefix)  # no glob characters can widen the key pattern
    commands = " ".join(f"+{name}" for name in ACL_COMMANDS)
    return f"resetkeys ~{prefix}:* resetchannels -@all {commands}"


ACL_RULE = acl_rule()
"""The rules for the default prefix, as the README gives them:
``ACL SETUSER <user> on ><password> <ACL_RULE>``."""


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


def config_value(client: redis.Redis, name: str) -> str | None:
    """One ``CONFIG GET`` value as text; None when the server refuses ``CONFIG``."""
    try:
        reply: dict[Any, Any] = client.config_get(name)
    except redis.ResponseError:  # unknown or renamed command, or NOPERM (an ACL)
        return None
    value = reply.get(name)
    return None if value is None else str(value)


def server_version(client: redis.Redis) -> str | None:
    """The ``redis_version`` of ``INFO server``; None when the server refuses ``INFO``."""
    try:
        info: dict[str, Any] = client.info("server")
    except redis.ResponseError:  # NOPERM: INFO is @dangerous, so a least-privilege user lacks it
        return None
    version = info.get("redis_version")
    return None if version is None else str(version)


class Finding(NamedTuple):
    """One thing :func:`check_server` reports: a problem to fix, or (``checked`` False) a
    check the server did not allow."""

    text: str
    checked: bool = True


def _config_findings(client: redis.Redis) -> list[Finding]:
    """The eviction policy and persistence, read with ``CONFIG GET``."""
    policy = config_value(client, "maxmemory-policy")
    if policy is None:
        return [
            Finding(
                "CONFIG GET is not allowed (a managed Redis?): could not check maxmemory-policy "
                "or persistence; make sure the policy is noeviction and AOF is on",
                checked=False,
            )
        ]
    findings: list[Finding] = []
    if policy != "noeviction":
        findings.append(
            Finding(f"maxmemory-policy is {policy}: Redis may evict jobs; set it to noeviction")
        )
    appendonly, save = config_value(client, "appendonly"), config_value(client, "save")
    persistence = persistence_warning(appendonly, save)
    if persistence is not None:
        findings.append(Finding(persistence))
    return findings


def _node_findings(client: redis.Redis) -> list[Finding]:
    """What to fix on one server, and what it did not let us check."""
    version = server_version(client)
    findings: list[Finding] = []
    if version is None:
        findings.append(
            Finding(
                "INFO is not allowed: could not check the Redis version (7.2+ advised)",
                checked=False,
            )
        )
    else:
        too_old = version_warning(version)
        if too_old is not None:
            findings.append(Finding(too_old))
    findings.extend(_config_findings(client))
    return findings


def server_findings(client: redis.Redis | redis.cluster.RedisCluster) -> list[Finding]:
    """The findings of :func:`check_server`, not logged; on a Redis Cluster every primary's,
    each naming its node."""
    if not isinstance(client, redis.cluster.RedisCluster):
        return _node_findings(client)
    findings: list[Finding] = []
    for node in client.get_primaries():  # type: ignore[no-untyped-call]
        node_client = client.get_redis_connection(node)
        findings.extend(
            Finding(f"{node.name}: {f.text}", f.checked) for f in _node_findings(node_client)
        )
    return findings


def check_server(client: redis.Redis | redis.cluster.RedisCluster) -> list[str]:
    """Warnings about the server behind ``client``: eviction policy, persistence, version.

    Each warning is also logged on the ``scheduler`` logger. An empty list means nothing to fix.
    A server that refuses ``CONFIG GET`` or ``INFO`` (a managed Redis, or a user with only
    :data:`ACL_RULE`) gets a warning saying what could not be checked; the other checks still
    run. Connection errors from redis-py pass through. On a Redis Cluster every primary is
    checked, and each warning names its node.
    """
    warnings = [finding.text for finding in server_findings(client)]
    for text in warnings:
        logger.warning("%s", text)
    return warnings
