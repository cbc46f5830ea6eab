"""check_server: the warnings about a Redis that would break the guarantees (an evicting policy,
no persistence, an old version), and how it carries on when a managed Redis forbids ``CONFIG``
or ``INFO``. The test server starts with persistence off."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from scheduler import check_server
from scheduler._server_checks import parse_version, persistence_warning, version_warning

RestrictedClient = Callable[..., redis.Redis]
"""The ``restricted_client`` fixture: ``restricted_client("config")`` is a client logged in as
a fresh ACL user allowed everything but the command categories or commands given."""


def has_warning(warnings: list[str], fragment: str) -> bool:
    """True when one of ``warnings`` contains ``fragment``."""
    return any(fragment in text for text in warnings)


@pytest.fixture
def restricted_client(r: redis.Redis) -> Iterator[RestrictedClient]:
    """Build clients for ACL users denied some commands; the users are deleted afterwards."""
    users: list[str] = []
    clients: list[redis.Redis] = []

    def build(*denied: str) -> redis.Redis:
        user, password = f"check-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        commands = ["+@all", *(f"-{name}" for name in denied)]
        try:
            r.acl_setuser(
                user,
                enabled=True,
                passwords=[f"+{password}"],
                keys=["*"],
                channels=["*"],
                commands=commands,
            )
        except redis.ResponseError as exc:
            pytest.skip(f"this Redis does not let the test create ACL users: {exc}")
        users.append(user)
        where = r.connection_pool.connection_kwargs
        client = redis.Redis(
            host=where["host"], port=where["port"], username=user, password=password
        )
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()
    for user in users:
        r.acl_deluser(user)


def test_a_server_without_persistence_is_reported(r: redis.Redis) -> None:
    warnings = check_server(r)
    assert has_warning(warnings, "persistence is off")
    assert not has_warning(warnings, "maxmemory-policy")
    assert not has_warning(warnings, "not allowed")


def test_an_evicting_policy_is_reported_and_logged(
    r: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    before = str(r.config_get("maxmemory-policy")["maxmemory-policy"])
    r.config_set("maxmemory-policy", "allkeys-lru")
    try:
        with caplog.at_level(logging.WARNING, logger="scheduler"):
            warnings = check_server(r)
    finally:
        r.config_set("maxmemory-policy", before)
    assert has_warning(warnings, "maxmemory-policy is allkeys-lru")
    logged = [record.getMessage() for record in caplog.records if record.name == "scheduler"]
    assert logged == warnings
    assert all(record.levelno == logging.WARNING for record in caplog.records)


def test_aof_counts_as_persistence(r: redis.Redis) -> None:
    r.config_set("appendonly", "yes")
    try:
        warnings = check_server(r)
    finally:
        r.config_set("appendonly", "no")
    assert not has_warning(warnings, "persistence is off")


def test_rdb_save_points_count_as_persistence(r: redis.Redis) -> None:
    before = str(r.config_get("save")["save"])
    r.config_set("save", "3600 1")
    try:
        warnings = check_server(r)
    finally:
        r.config_set("save", before)
    assert not has_warning(warnings, "persistence is off")


def test_a_server_that_forbids_config_is_reported_and_the_version_still_checked(
    restricted_client: RestrictedClient, r: redis.Redis
) -> None:
    version = str(r.info("server")["redis_version"])
    warnings = check_server(restricted_client("@admin", "config"))
    assert has_warning(warnings, "CONFIG GET is not allowed")
    assert not has_warning(warnings, "persistence is off")
    expected_version_warning = version_warning(version)
    if expected_version_warning is not None:
        assert expected_version_warning in warnings


def test_a_server_that_forbids_info_still_gets_the_config_checks(
    restricted_client: RestrictedClient,
) -> None:
    warnings = check_server(restricted_client("info"))
    assert has_warning(warnings, "INFO is not allowed")
    assert has_warning(warnings, "persistence is off")


@pytest.mark.parametrize(
    ("version", "warned", "fragment"),
    [
        ("6.2.14", True, "older than 7.0"),
        ("7.0.15", True, "7.2 or later is recommended"),
        ("7.2.4", False, ""),
        ("8.0", False, ""),
        ("unknown", True, "older than 7.0"),
    ],
)
def test_the_version_warning(version: str, warned: bool, fragment: str) -> None:
    warning = version_warning(version)
    assert (warning is not None) == warned
    if warning is not None:
        assert fragment in warning and version in warning


def test_parse_version_reads_major_and_minor() -> None:
    assert parse_version("7.2.4") == (7, 2)
    assert parse_version("6.2.14") == (6, 2)
    assert parse_version("7.x") == (7,)


@pytest.mark.parametrize(
    ("appendonly", "save", "off"),
    [
        ("no", "", True),
        ("no", "  ", True),
        (None, None, True),
        ("yes", "", False),
        ("no", "3600 1 300 100", False),
    ],
)
def test_the_persistence_warning(appendonly: str | None, save: str | None, off: bool) -> None:
    assert (persistence_warning(appendonly, save) is not None) == off
