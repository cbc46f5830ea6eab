"""Every script called directly, past the client's own checks, with hostile ARGV.

Each script must refuse a bad argument with ``{"bad_arg", <fixed argument name>}`` (never the
caller's text echoed back) and write nothing: the database, seeded with jobs in every state so
that "unchanged" means something, must be byte-for-byte the same after the call.

The table :data:`ARGUMENTS` names each checked argument of each script by its position in the
ARGV the client builds; every argument is tried with every hostile value of its kind. Too many
and too few arguments are tried for every script as well.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from scheduler import Queue, State
from scheduler._scripts import SCRIPT_NAMES
from scheduler._validate import MAX_MS
from scheduler.testing import pin_clock
from tests.conftest import snapshot
from tests.integration.helpers import (
    MADE_UP_TOKEN,
    SEED_IDS,
    T0,
    Snapshot,
    run_script,
    seed_every_state,
)

Args = list[Any]

NUMBER = (
    "nan",
    "inf",
    "-inf",
    "1e309",
    "1e3",
    "0x10",
    "1.5",
    " 1",
    "1 ",
    "+1",
    "",
    "99999999999999999999",
    "99999999999999999999999",
)
"""Hostile values for any integer argument: not plain decimal, or far out of any range."""

COUNT = (*NUMBER, "-1")
"""Hostile values for an integer argument that cannot be negative."""

ID = ("a b", "a|b", "a,b", "a{b", "a}b", "", "a\nb", "x" * 129, b"\xff")
"""Hostile values for a job, worker or claim id."""

TOKEN_VALUES = ("t" * 65,)
"""A lease token longer than any token a claim hands out."""

WINDOW = (*COUNT, "0", str(MAX_MS + 1))
"""Hostile values for the repeat window (1 ms up to a century)."""

STARTED = (*NUMBER, "-2", str(MAX_MS + 1))
"""Hostile values for a "handler started this long ago" report (-1 means not started)."""


@dataclass(frozen=True)
class Argument:
    """One checked argument: the script, its index in the client's ARGV, the name the script
    answers with when refusing it, and the values to try."""

    script: str
    position: int
    name: str
    values: tuple[Any, ...]


ARGUMENTS = [
    Argument("enqueue", 0, "n_options", (*COUNT, "0", "1001")),
    Argument("enqueue", 1, "priority", (*NUMBER, "1001", "-1001")),
    Argument("enqueue", 2, "delay_ms", (*COUNT, str(MAX_MS + 1))),
    Argument("enqueue", 3, "run_at_ms", COUNT),
    Argument("enqueue", 4, "max_attempts", (*COUNT, "0", "1001")),
    Argument("enqueue", 5, "lease_ms", (*COUNT, "0")),
    Argument("enqueue", 6, "backoff_ms", COUNT),
    Argument("enqueue", 7, "backoff_max_ms", COUNT),
    Argument("enqueue", 8, "jitter_pm", (*COUNT, "1001")),
    Argument("enqueue", 9, "keep_result_ms", COUNT),
    Argument("enqueue", 10, "keep_dead_ms", COUNT),
    Argument("enqueue", 11, "n_jobs", (*COUNT, "0", "2")),
    Argument("enqueue", 12, "id", ID),
    Argument("enqueue", 14, "option_index", (*COUNT, "0", "2")),
    Argument("claim", 0, "worker_id", ID),
    Argument("claim", 1, "claim_id", ID),
    Argument("claim", 2, "count", (*COUNT, "0", "1001")),
    Argument("claim", 3, "lease_ms", (*COUNT, str(MAX_MS + 1))),
    Argument("claim", 4, "maintenance", (*COUNT, "1001")),
    Argument("claim", 5, "max_bytes", (*COUNT, "0", str(2**30 + 1))),
    Argument("claim", 6, "window_ms", WINDOW),
    Argument("complete", 0, "max_completed", (*COUNT, "1000000001")),
    Argument("complete", 1, "trim_limit", (*COUNT, "1001")),
    Argument("complete", 2, "window_ms", WINDOW),
    Argument("complete", 3, "n", (*COUNT, "0", "2")),
    Argument("complete", 4, "id", ID),
    Argument("complete", 5, "token", TOKEN_VALUES),
    Argument("fail", 0, "id", ID),
    Argument("fail", 1, "token", TOKEN_VALUES),
    Argument("fail", 2, "error", ("e" * 65_537,)),
    Argument("fail", 3, "retryable", (*COUNT, "2")),
    Argument("fail", 4, "delay_ms", (*NUMBER, "-2", str(MAX_MS + 1))),
    Argument("fail", 5, "max_dead", COUNT),
    Argument("fail", 6, "trim_limit", (*COUNT, "1001")),
    Argument("fail", 7, "window_ms", WINDOW),
    Argument("heartbeat", 0, "lease_ms", COUNT),
    Argument("heartbeat", 1, "n", (*COUNT, "0", "2")),
    Argument("heartbeat", 2, "id", ID),
    Argument("heartbeat", 3, "token", TOKEN_VALUES),
    Argument("heartbeat", 4, "started", STARTED),
    Argument("release", 0, "n", (*COUNT, "0", "2")),
    Argument("release", 1, "id", ID),
    Argument("release", 2, "token", TOKEN_VALUES),
    Argument("release", 3, "started", STARTED),
    Argument("reap", 0, "limit", (*COUNT, "0", "1001")),
    Argument("reap", 1, "max_completed", COUNT),
    Argument("reap", 2, "max_dead", COUNT),
    Argument("reap", 3, "max_cancelled", COUNT),
    Argument("reap", 4, "window_ms", WINDOW),
    Argument("cancel", 0, "id", ID),
    Argument("cancel", 1, "max_cancelled", COUNT),
    Argument("cancel", 2, "trim_limit", (*COUNT, "1001")),
    Argument("cancel", 3, "window_ms", WINDOW),
    Argument("requeue", 0, "request_id", ID),
    Argument("requeue", 1, "window_ms", WINDOW),
    Argument("requeue", 2, "limit", (*COUNT, "0", "1001")),
    Argument("requeue", 3, "id", ID),
    Argument("purge", 0, "request_id", ID),
    Argument("purge", 1, "window_ms", WINDOW),
    Argument("purge", 2, "state", ("waiting", "delayed", "active", "DEAD", "dead ", "", "nan")),
    Argument("purge", 3, "limit", (*COUNT, "0", "1001")),
    Argument("purge", 4, "id", ID),
    Argument("inspect", 0, "id", ID),
    Argument("stats", 0, "active_limit", (*COUNT, "1001")),
]
"""Every checked argument of every script, with the values it must refuse."""

GOOD_ARGS: dict[str, Callable[[Queue], tuple[Any, ...]]] = {
    "enqueue": lambda q: q.ops.enqueue("hostile", id="hostile-1").args,
    "claim": lambda q: q.ops.claim("worker-h", claim_id="claim-h").args,
    "complete": lambda q: q.ops.complete((SEED_IDS[State.ACTIVE], MADE_UP_TOKEN), "result").args,
    "fail": lambda q: q.ops.fail((SEED_IDS[State.ACTIVE], MADE_UP_TOKEN), "boom").args,
    "heartbeat": lambda q: q.ops.heartbeat([(SEED_IDS[State.ACTIVE], MADE_UP_TOKEN)]).args,
    "release": lambda q: q.ops.release([(SEED_IDS[State.ACTIVE], MADE_UP_TOKEN)]).args,
    "reap": lambda q: q.ops.reap().args,
    "cancel": lambda q: q.ops.cancel(SEED_IDS[State.WAITING]).args,
    "requeue": lambda q: q.ops.requeue([SEED_IDS[State.DEAD]]).args,
    "purge": lambda q: q.ops.purge("dead", [SEED_IDS[State.DEAD]]).args,
    "inspect": lambda q: q.ops.inspect(SEED_IDS[State.WAITING]).args,
    "stats": lambda q: q.ops.stats().args,
}
"""For each script, the well-formed ARGV the client builds for it on the seeded queue."""

NO_ARGS_REFUSED_AS = {
    "enqueue": "n_options",
    "claim": "worker_id",
    "complete": "max_completed",
    "fail": "id",
    "heartbeat": "lease_ms",
    "release": "n",
    "reap": "limit",
    "cancel": "id",
    "requeue": "request_id",
    "purge": "request_id",
    "inspect": "id",
    "stats": "active_limit",
}
"""The argument each script names when called with no ARGV at all."""

TRUNCATED: list[tuple[str, int, str]] = [
    ("enqueue", -1, "n_jobs"),
    ("enqueue", 12, "n_jobs"),
    ("enqueue", 5, "lease_ms"),
    ("claim", -1, "window_ms"),
    ("claim", 5, "max_bytes"),
    ("complete", -1, "n"),
    ("fail", -1, "window_ms"),
    ("fail", 3, "retryable"),
    ("heartbeat", -1, "n"),
    ("release", -1, "n"),
    ("reap", -1, "window_ms"),
    ("cancel", -1, "window_ms"),
    ("requeue", 1, "window_ms"),
    ("purge", 1, "window_ms"),
    ("purge", 3, "limit"),
]
"""Too few arguments: (script, ARGV kept as ``args[:keep]``, the argument named). requeue and
purge take a variable number of ids, so dropping an id leaves a valid call; their short calls
are the empty ones."""

EXTRA_ARGS: dict[str, tuple[tuple[Any, ...], str]] = {
    "enqueue": (("1",), "n_jobs"),
    "claim": (("1",), "argv"),
    "complete": (("1",), "n"),
    "fail": (("1",), "argv"),
    "heartbeat": (("1",), "n"),
    "release": (("1",), "n"),
    "reap": (("1",), "argv"),
    "cancel": (("1",), "argv"),
    "requeue": (tuple(f"id-{i}" for i in range(1_000)), "ids"),
    "purge": (tuple(f"id-{i}" for i in range(1_000)), "ids"),
    "inspect": (("1",), "id"),
    "stats": (("1",), "active_limit"),
}
"""Too many arguments: what is appended to the good ARGV, and the argument named. For requeue
and purge, ids past the batch limit of 1000."""


@dataclass(frozen=True)
class Seed:
    """The seeded database, built once for this module since several hundred tests start from
    it: every key as DUMP bytes (to restore it) and as :func:`tests.conftest.snapshot` reads it
    (what every refused call must leave behind)."""

    dumped: dict[bytes, bytes]
    contents: dict[bytes, Any]


@pytest.fixture(scope="module")
def seed(redis_url: str) -> Seed:
    """Queue ``test`` on a pinned clock with one job in every state, dumped and read back."""
    client = redis.Redis.from_url(redis_url)
    try:
        client.flushdb()
        pin_clock(client, "test", T0)
        seed_every_state(Queue(client, "test"))
        dumped = {key: client.dump(key) for key in client.scan_iter(count=1_000)}
        contents = snapshot(client)
        client.flushdb()
    finally:
        client.close()
    return Seed({k: v for k, v in dumped.items() if isinstance(v, bytes)}, contents)


@pytest.fixture
def seeded(r: redis.Redis, q: Queue, seed: Seed) -> Queue:
    """Queue ``test`` restored to the seeded state (one round trip)."""
    pipe = r.pipeline(transaction=False)
    for key, value in seed.dumped.items():
        pipe.restore(key, 0, value)
    pipe.execute()
    assert r.dbsize() == len(seed.dumped) > 10
    return q


Refusal = Callable[[str, Args, str], None]


@pytest.fixture
def expect_refusal(r: redis.Redis, seeded: Queue, seed: Seed, db_snapshot: Snapshot) -> Refusal:
    """``expect_refusal(script, args, name)`` runs ``script`` on the seeded queue with ``args``
    and checks it answers ``bad_arg`` naming ``name`` (and nothing else), leaving the database
    exactly as seeded."""

    def check(script: str, args: Args, name: str) -> None:
        reply = run_script(r, seeded, script, args)
        assert reply == [b"bad_arg", name.encode()]
        assert db_snapshot() == seed.contents

    return check


def short_id(value: Any) -> str:
    """A readable test id for a hostile value, however long."""
    text = repr(value)
    return text if len(text) <= 24 else f"{text[:12]}...len{len(value)}"


def with_value(args: tuple[Any, ...], position: int, value: Any) -> Args:
    """``args`` with the value at ``position`` replaced."""
    changed = list(args)
    changed[position] = value
    return changed


CASES = [
    pytest.param(arg, value, id=f"{arg.script}-{arg.name}-{short_id(value)}")
    for arg in ARGUMENTS
    for value in arg.values
]


def test_the_table_covers_every_script() -> None:
    assert {arg.script for arg in ARGUMENTS} == set(SCRIPT_NAMES)
    assert set(GOOD_ARGS) == set(NO_ARGS_REFUSED_AS) == set(EXTRA_ARGS) == set(SCRIPT_NAMES)


@pytest.mark.parametrize("script", SCRIPT_NAMES)
def test_the_good_arguments_are_accepted(r: redis.Redis, seeded: Queue, script: str) -> None:
    """The control: without a hostile value, each script accepts the ARGV the table starts
    from, so every refusal below is the hostile value's doing."""
    reply = run_script(r, seeded, script, list(GOOD_ARGS[script](seeded)))
    assert reply[0] != b"bad_arg"


@pytest.mark.parametrize(("arg", "value"), CASES)
def test_a_hostile_value_is_refused_and_changes_nothing(
    seeded: Queue, expect_refusal: Refusal, arg: Argument, value: Any
) -> None:
    args = with_value(GOOD_ARGS[arg.script](seeded), arg.position, value)
    expect_refusal(arg.script, args, arg.name)


@pytest.mark.parametrize("script", SCRIPT_NAMES)
def test_no_arguments_at_all_are_refused(expect_refusal: Refusal, script: str) -> None:
    expect_refusal(script, [], NO_ARGS_REFUSED_AS[script])


@pytest.mark.parametrize(("script", "keep", "name"), TRUNCATED)
def test_too_few_arguments_are_refused(
    seeded: Queue, expect_refusal: Refusal, script: str, keep: int, name: str
) -> None:
    expect_refusal(script, list(GOOD_ARGS[script](seeded))[:keep], name)


@pytest.mark.parametrize("script", SCRIPT_NAMES)
def test_too_many_arguments_are_refused(
    seeded: Queue, expect_refusal: Refusal, script: str
) -> None:
    extra, name = EXTRA_ARGS[script]
    expect_refusal(script, [*GOOD_ARGS[script](seeded), *extra], name)
