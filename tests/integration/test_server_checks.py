"""check_server: the warnings about a Redis that would break the guarantees."""

from __future__ import annotations

import logging

import pytest
import redis

from scheduler import check_server


def test_a_server_without_persistence_is_reported(r: redis.Redis) -> None:
    warnings = check_server(r)
    assert any("persistence is off" in text for text in warnings)
    assert not any("maxmemory-policy" in text for text in warnings)


def test_an_evicting_policy_is_reported_and_logged(
    r: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    before = r.config_get("maxmemory-policy")["maxmemory-policy"]
    r.config_set("maxmemory-policy", "allkeys-lru")
    try:
        with caplog.at_level(logging.WARNING, logger="scheduler"):
            warnings = check_server(r)
    finally:
        r.config_set("maxmemory-policy", before)
    assert any("maxmemory-policy is allkeys-lru" in text for text in warnings)
    assert any("noeviction" in record.getMessage() for record in caplog.records)


def test_aof_counts_as_persistence(r: redis.Redis) -> None:
    r.config_set("appendonly", "yes")
    try:
        warnings = check_server(r)
    finally:
        r.config_set("appendonly", "no")
    assert not any("persistence is off" in text for text in warnings)
