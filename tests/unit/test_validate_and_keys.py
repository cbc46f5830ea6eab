"""Argument checks (scheduler._validate) and the key schema (scheduler._keys).

Ids and queue names are allow-lists: anything outside them (braces, spaces, separators, control
characters, non-ASCII) is refused, because a ``{`` or ``}`` in a queue name would move the Redis
Cluster hash tag, and a space, ``,`` or ``|`` in an id would break the stored records.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from redis.crc import key_slot

from scheduler import JobOptions
from scheduler._keys import KEY_PARTS, QueueKeys, validate_prefix, validate_queue_name
from scheduler._validate import (
    MAX_BATCH,
    MAX_MS,
    check_batch,
    check_id,
    check_int,
    option_args,
)
from scheduler.errors import ConfigError, ValidationError

ID_ALLOWED = ["a", "Z", "0", "job-1", "a_b.c:d@e/f+g=h-i", "x" * 128, "550e8400e29b41d4"]
ID_REFUSED: list[Any] = [
    "",
    "x" * 129,
    "a b",
    " a",
    "a\t",
    "a\n",
    "a\x00b",
    "a\x7f",
    "a|b",
    "a,b",
    "{a}",
    "a{",
    "a}",
    "a*",
    "a\\b",
    "é",
    "ｊｏｂ",  # noqa: RUF001 - full-width letters must be refused
    "\u200bjob",
    None,
    1,
    b"job",
    ["job"],
]

QUEUE_ALLOWED = ["q", "emails", "A.b-c_9", "x" * 64, "...", "-"]
QUEUE_REFUSED: list[Any] = [
    "",
    "x" * 65,
    "{q}",
    "q{",
    "}q",
    "a b",
    "a:b",
    "a/b",
    "a\n",
    "a\x00",
    "é",
    "emails ",
    None,
    7,
    b"q",
]

PREFIX_ALLOWED = ["scheduler", "app:jobs", "a.b-c_d", "x" * 64]
PREFIX_REFUSED: list[Any] = ["", "x" * 65, "{a}", "a b", "a\n", "é", None, b"scheduler"]

# Each JobOptions int field: its lowest and highest accepted value.
INT_OPTION_BOUNDS = {
    "priority": (-1000, 1000),
    "delay_ms": (0, MAX_MS),
    "run_at_ms": (1, MAX_MS),
    "max_attempts": (1, 1000),
    "lease_ms": (1, MAX_MS),
    "backoff_ms": (0, MAX_MS),
    "backoff_max_ms": (0, MAX_MS),
    "keep_result_ms": (0, MAX_MS),
    "keep_dead_ms": (0, MAX_MS),
}
# The order of the ten numbers option_args returns (enqueue.lua's option set).
OPTION_ORDER = (
    "priority",
    "delay_ms",
    "run_at_ms",
    "max_attempts",
    "lease_ms",
    "backoff_ms",
    "backoff_max_ms",
    "jitter_pm",
    "keep_result_ms",
    "keep_dead_ms",
)


def options_with(**changes: Any) -> JobOptions:
    """Default options with some fields replaced (types not checked: that is the point)."""
    return dataclasses.replace(JobOptions(), **changes)


# -- ids -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ID_ALLOWED)
def test_allowed_ids_are_returned_unchanged(value: str) -> None:
    assert check_id(value) == value


@pytest.mark.parametrize("value", ID_REFUSED, ids=repr)
def test_refused_ids_raise_validation_error(value: Any) -> None:
    with pytest.raises(ValidationError):
        check_id(value)


def test_id_error_names_what_was_checked() -> None:
    with pytest.raises(ValidationError, match="worker id"):
        check_id("a b", "worker id")


# -- integers and batches ------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 5, 10])
def test_check_int_accepts_the_closed_range(value: int) -> None:
    assert check_int(value, "n", 0, 10) == value


@pytest.mark.parametrize(
    "value", [-1, 11, True, False, 1.0, 5.5, "5", None, float("nan")], ids=repr
)
def test_check_int_refuses_bools_floats_text_and_out_of_range(value: Any) -> None:
    with pytest.raises(ValidationError, match="n must be an integer"):
        check_int(value, "n", 0, 10)


@pytest.mark.parametrize("size", [1, MAX_BATCH])
def test_check_batch_accepts_one_to_max(size: int) -> None:
    check_batch([None] * size, "batch")


@pytest.mark.parametrize("size", [0, MAX_BATCH + 1])
def test_check_batch_refuses_empty_and_oversized(size: int) -> None:
    with pytest.raises(ValidationError, match="batch"):
        check_batch([None] * size, "batch")


# -- option sets ---------------------------------------------------------------------------------


def test_default_options_give_ten_numbers_in_script_order() -> None:
    defaults = JobOptions()
    numbers = option_args(defaults)
    assert len(numbers) == len(OPTION_ORDER)
    expected = dict(zip(OPTION_ORDER, numbers, strict=True))
    assert expected["run_at_ms"] == 0  # None: no absolute run-at time
    assert expected["jitter_pm"] == round(defaults.jitter * 1000)
    for name in INT_OPTION_BOUNDS.keys() - {"run_at_ms"}:
        assert expected[name] == getattr(defaults, name), name


def test_every_option_lands_in_its_own_slot() -> None:
    options = JobOptions(
        priority=-7,
        delay_ms=11,
        run_at_ms=13,
        max_attempts=17,
        lease_ms=19,
        backoff_ms=23,
        backoff_max_ms=29,
        jitter=0.031,
        keep_result_ms=37,
        keep_dead_ms=41,
    )
    assert option_args(options) == (-7, 11, 13, 17, 19, 23, 29, 31, 37, 41)


@pytest.mark.parametrize("field", sorted(INT_OPTION_BOUNDS))
def test_int_options_accept_both_bounds(field: str) -> None:
    low, high = INT_OPTION_BOUNDS[field]
    index = OPTION_ORDER.index(field)
    assert option_args(options_with(**{field: low}))[index] == low
    assert option_args(options_with(**{field: high}))[index] == high


@pytest.mark.parametrize("field", sorted(INT_OPTION_BOUNDS))
def test_int_options_refuse_out_of_bounds_bools_and_floats(field: str) -> None:
    low, high = INT_OPTION_BOUNDS[field]
    for bad in (low - 1, high + 1, True, False, float(low), float(high), 1.5, str(low)):
        with pytest.raises(ValidationError, match=field):
            option_args(options_with(**{field: bad}))


@pytest.mark.parametrize(
    ("jitter", "per_mille"),
    [(0, 0), (0.0, 0), (0.5, 500), (1, 1000), (1.0, 1000), (0.123, 123), (0.0004, 0)],
)
def test_jitter_becomes_per_mille(jitter: float, per_mille: int) -> None:
    assert option_args(JobOptions(jitter=jitter))[OPTION_ORDER.index("jitter_pm")] == per_mille


@pytest.mark.parametrize(
    "jitter",
    [float("nan"), float("inf"), float("-inf"), -0.1, 1.1, -1, 2, True, False, "0.5", None],
    ids=repr,
)
def test_jitter_refuses_non_finite_out_of_range_bools_and_text(jitter: Any) -> None:
    with pytest.raises(ValidationError, match="jitter"):
        option_args(options_with(jitter=jitter))


# -- queue names, prefixes and keys --------------------------------------------------------------


@pytest.mark.parametrize("name", QUEUE_ALLOWED)
def test_allowed_queue_names(name: str) -> None:
    assert validate_queue_name(name) == name
    assert QueueKeys("scheduler", name).queue == name


@pytest.mark.parametrize("name", QUEUE_REFUSED, ids=repr)
def test_refused_queue_names_raise_config_error(name: Any) -> None:
    with pytest.raises(ConfigError):
        validate_queue_name(name)
    with pytest.raises(ConfigError):
        QueueKeys("scheduler", name)


@pytest.mark.parametrize("prefix", PREFIX_ALLOWED)
def test_allowed_prefixes(prefix: str) -> None:
    assert validate_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", PREFIX_REFUSED, ids=repr)
def test_refused_prefixes_raise_config_error(prefix: Any) -> None:
    with pytest.raises(ConfigError):
        validate_prefix(prefix)
    with pytest.raises(ConfigError):
        QueueKeys(prefix, "q")


def test_key_format_is_prefix_hash_tag_part() -> None:
    keys = QueueKeys("app:jobs", "emails")
    assert keys.hash_tag == "{emails}"
    assert keys.key("meta") == "app:jobs:{emails}:meta"
    assert keys.key("request_exp") == "app:jobs:{emails}:request_exp"


def test_keys_keep_the_order_asked_for() -> None:
    keys = QueueKeys("p", "q")
    assert keys.keys(("seq", "clock", "meta")) == ("p:{q}:seq", "p:{q}:clock", "p:{q}:meta")
    assert keys.keys(()) == ()


@pytest.mark.parametrize("part", ["", "Meta", "meta ", "jobs", "meta:x", "{q}"])
def test_unknown_key_parts_are_refused(part: str) -> None:
    keys = QueueKeys("p", "q")
    with pytest.raises(ConfigError):
        keys.key(part)
    with pytest.raises(ConfigError):
        keys.keys(("meta", part))


def test_every_key_of_a_queue_is_in_one_cluster_slot() -> None:
    keys = QueueKeys("scheduler", "emails").keys(KEY_PARTS)
    assert len(set(keys)) == len(KEY_PARTS)
    assert {key_slot(key.encode()) for key in keys} == {key_slot(b"{emails}")}


def test_key_parts_are_unique_plain_names() -> None:
    assert len(set(KEY_PARTS)) == len(KEY_PARTS)
    for part in KEY_PARTS:
        assert part.isidentifier() and part.islower(), part
