"""The pure core (scheduler._ops.QueueOps): each method builds one script call with the right
script, keys and arguments, refuses bad arguments when it builds (the core sends nothing at
all), and its ``parse`` turns fabricated replies (lists of bytes and ints, as redis-py returns
them) into values and errors. No Redis here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from redis.crc import key_slot

from scheduler import (
    ConfigError,
    DuplicateJob,
    InvalidState,
    Job,
    JobError,
    JobNotFound,
    JobOptions,
    JobSpec,
    LeaseLost,
    Outcome,
    PayloadError,
    Retention,
    ScriptError,
    State,
    Status,
    ValidationError,
)
from scheduler._codec import encode
from scheduler._ops import Call, QueueOps
from scheduler._scripts import SCRIPT_NAMES
from scheduler._validate import MAX_BATCH, option_args
from scheduler.client import build_ops
from tests.unit.test_lua_static import header_key_parts, script_file

QUEUE = "test"
PREFIX = "scheduler"
MIB = 1024 * 1024
DEFAULT_OPTION_ARGS = option_args(JobOptions())
NEW_ID = re.compile(r"[A-Za-z0-9_-]{22}")

# One call of every script, built on a QueueOps; used by the checks shared by all calls.
BUILDERS: dict[str, Callable[[QueueOps], Call[Any]]] = {
    "enqueue": lambda ops: ops.enqueue({"a": 1}, id="j1"),
    "claim": lambda ops: ops.claim("w1", claim_id="c1"),
    "complete": lambda ops: ops.complete(("j1", "1-abc"), "done"),
    "fail": lambda ops: ops.fail(("j1", "1-abc"), "boom"),
    "heartbeat": lambda ops: ops.heartbeat([("j1", "1-abc")]),
    "release": lambda ops: ops.release([("j1", "1-abc")]),
    "reap": lambda ops: ops.reap(),
    "cancel": lambda ops: ops.cancel("j1"),
    "requeue": lambda ops: ops.requeue(["j1"]),
    "purge": lambda ops: ops.purge(State.DEAD, ["j1"]),
    "inspect": lambda ops: ops.inspect("j1"),
    "stats": lambda ops: ops.stats(),
}


def make_ops(
    name: str = QUEUE,
    prefix: str = PREFIX,
    defaults: JobOptions | None = None,
    retention: Retention | None = None,
    max_payload_bytes: int = MIB,
) -> QueueOps:
    """A QueueOps built the way the client builds it."""
    return build_ops(name, prefix, defaults, retention, max_payload_bytes)


@pytest.fixture
def ops() -> QueueOps:
    """The pure core of queue ``test`` with default settings."""
    return make_ops()


def header_keys(script: str, prefix: str = PREFIX, queue: str = QUEUE) -> tuple[str, ...]:
    """The full key names a script's header asks for, in order."""
    return tuple(f"{prefix}:{{{queue}}}:{part}" for part in header_key_parts(script_file(script)))


def assert_sendable(call: Call[Any], script: str) -> None:
    """The call names ``script``, passes exactly its header's keys (one hash tag, one slot), and
    only arguments Redis takes as they are: str, bytes or int (never bool or float)."""
    assert call.script == script
    assert call.keys == header_keys(script)
    assert len({key_slot(key.encode()) for key in call.keys}) == 1
    for arg in call.args:
        assert type(arg) in (str, bytes, int), f"{script}: argument {arg!r} is a {type(arg)}"


def job_record(**changes: Any) -> list[Any]:
    """The fields list of an inspect reply (JOB_FIELDS order), as redis-py returns it."""
    fields: dict[str, Any] = {
        "state": b"active",
        "attempt": 1,
        "max_attempts": 3,
        "priority": 5,
        "lease_ms": 30_000,
        "backoff_ms": 1_000,
        "backoff_max_ms": 60_000,
        "jitter_pm": 250,
        "keep_result_ms": 86_400_000,
        "keep_dead_ms": 604_800_000,
        "token": b"1-00ff00ff00ff00ff",
        "outcome": b"running",
        "deadline_ms": 31_000,
        "worker": b"w1",
        "created_ms": 900,
        "ready_ms": 950,
        "started_ms": 1_000,
        "finished_ms": 0,
    }
    fields.update(changes)
    return list(fields.values())


# -- every call ----------------------------------------------------------------------------------


@pytest.mark.parametrize("script", BUILDERS)
def test_every_call_sends_its_header_keys_and_plain_args(ops: QueueOps, script: str) -> None:
    assert_sendable(BUILDERS[script](ops), script)


def test_every_script_has_a_builder() -> None:
    assert set(BUILDERS) == set(SCRIPT_NAMES)


@pytest.mark.parametrize("script", BUILDERS)
def test_keys_follow_the_prefix_and_queue(script: str) -> None:
    call = BUILDERS[script](make_ops(name="emails.v2", prefix="app:jobs"))
    assert call.keys == header_keys(script, prefix="app:jobs", queue="emails.v2")
    assert all(key.startswith("app:jobs:{emails.v2}:") for key in call.keys)


@pytest.mark.parametrize("script", BUILDERS)
@pytest.mark.parametrize("reply", [None, b"ok", 5, [], {}, (b"ok",)], ids=repr)
def test_every_parse_refuses_a_reply_that_is_not_a_list(
    ops: QueueOps, script: str, reply: Any
) -> None:
    with pytest.raises(ScriptError):
        BUILDERS[script](ops).parse(reply)


@pytest.mark.parametrize("script", BUILDERS)
def test_every_parse_turns_bad_arg_into_script_error(ops: QueueOps, script: str) -> None:
    with pytest.raises(ScriptError, match="argument refused: count") as caught:
        BUILDERS[script](ops).parse([b"bad_arg", b"count"])
    assert script in caught.value.script


@pytest.mark.parametrize("script", BUILDERS)
@pytest.mark.parametrize("status", [b"OK", b"weird", b"", 0], ids=repr)
def test_every_parse_refuses_an_unknown_status(ops: QueueOps, script: str, status: Any) -> None:
    with pytest.raises(ScriptError, match="unknown status"):
        BUILDERS[script](ops).parse([status, 1, 2, 3])


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"name": "a{b}"}, ConfigError),
        ({"name": ""}, ConfigError),
        ({"prefix": "p {x}"}, ConfigError),
        ({"defaults": JobOptions(priority=1001)}, ConfigError),
        ({"defaults": JobOptions(jitter=2.0)}, ConfigError),
        ({"max_payload_bytes": 0}, ConfigError),
    ],
    ids=repr,
)
def test_build_ops_refuses_bad_settings(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):  # more cases, on every queue class: test_queue_settings.py
        make_ops(**kwargs)


# -- enqueue -------------------------------------------------------------------------------------


def test_enqueue_args_are_one_option_set_then_one_job(ops: QueueOps) -> None:
    call = ops.enqueue({"to": "a@b"}, id="j1")
    assert call.args == (1, *DEFAULT_OPTION_ARGS, 1, "j1", encode({"to": "a@b"}), 1)


def test_enqueue_without_an_id_makes_a_fresh_one(ops: QueueOps) -> None:
    first, second = ops.enqueue("x").args[-3], ops.enqueue("x").args[-3]
    assert isinstance(first, str) and NEW_ID.fullmatch(first)
    assert first != second


def test_enqueue_many_groups_identical_option_sets(ops: QueueOps) -> None:
    fast, slow = JobOptions(priority=9), JobOptions(lease_ms=5)
    specs = [JobSpec(1, "a", fast), JobSpec(2, "b", slow), JobSpec(3, "c", fast), JobSpec(4, "d")]
    call = ops.enqueue_many(specs)
    assert call.args == (
        3,
        *option_args(fast),
        *option_args(slow),
        *DEFAULT_OPTION_ARGS,
        4,
        *("a", encode(1), 1),
        *("b", encode(2), 2),
        *("c", encode(3), 1),
        *("d", encode(4), 3),
    )


def test_jobs_without_options_share_the_queue_defaults(ops: QueueOps) -> None:
    defaults = JobOptions(max_attempts=7)
    call = make_ops(defaults=defaults).enqueue_many(
        [JobSpec(1, "a"), JobSpec(2, "b", defaults), JobSpec(3, "c")]
    )
    assert call.args == (
        1,
        *option_args(defaults),
        3,
        "a",
        encode(1),
        1,
        "b",
        encode(2),
        1,
        "c",
        encode(3),
        1,
    )


@pytest.mark.parametrize(
    ("specs", "error"),
    [
        ([], ValidationError),
        ([JobSpec(i) for i in range(MAX_BATCH + 1)], ValidationError),
        ([JobSpec(1, "a b")], ValidationError),
        ([JobSpec(1, "")], ValidationError),
        ([JobSpec(1, "ok"), JobSpec(object(), "bad")], PayloadError),
        ([JobSpec(b"x" * 200)], PayloadError),
        ([JobSpec(1, options=JobOptions(max_attempts=0))], ValidationError),
        ([JobSpec(1, options=JobOptions(delay_ms=True))], ValidationError),
    ],
    ids=["empty", "too-many", "id-space", "id-empty", "unencodable", "too-big", "options", "bool"],
)
def test_enqueue_many_refuses_bad_batches(specs: list[JobSpec], error: type[Exception]) -> None:
    with pytest.raises(error):
        make_ops(max_payload_bytes=100).enqueue_many(specs)


def test_enqueue_accepts_a_payload_exactly_at_the_cap() -> None:
    payload = b"x" * 10
    make_ops(max_payload_bytes=len(encode(payload))).enqueue(payload)


def test_enqueue_parse_reads_created_and_duplicate_jobs(ops: QueueOps) -> None:
    reply = [b"ok", 1, b"a", b"ok", b"waiting", b"b", b"duplicate", b"completed"]
    a, b = ops.enqueue_many([JobSpec(1, "a"), JobSpec(2, "b")]).parse(reply)
    assert (a.id, a.created, a.state) == ("a", True, State.WAITING)
    assert (b.id, b.created, b.state) == ("b", False, State.COMPLETED)
    one = ops.enqueue(1, id="d").parse([b"ok", 1, b"d", b"ok", b"delayed"])
    assert (one.id, one.created, one.state) == ("d", True, State.DELAYED)


def test_enqueue_unique_raises_duplicate_job(ops: QueueOps) -> None:
    call = ops.enqueue_unique(1, id="j1")
    assert call.parse([b"ok", 1, b"j1", b"ok", b"waiting"]).created
    with pytest.raises(DuplicateJob) as caught:
        call.parse([b"ok", 0, b"j1", b"duplicate", b"active"])
    assert (caught.value.queue, caught.value.job_id) == (QUEUE, "j1")


# -- claim ---------------------------------------------------------------------------------------


def test_claim_args(ops: QueueOps) -> None:
    call = ops.claim("w1", count=5, claim_id="c-1", lease_ms=2_000, maintenance=7)
    assert call.args == ("w1", "c-1", 5, 2_000, 7)
    assert ops.claim("w1", claim_id="c-1").args == ("w1", "c-1", 1, 0, 100)


def test_claim_makes_a_fresh_claim_id_when_none_is_given(ops: QueueOps) -> None:
    first, second = ops.claim("w1").args[1], ops.claim("w1").args[1]
    assert isinstance(first, str) and NEW_ID.fullmatch(first)
    assert first != second


@pytest.mark.parametrize(
    "kwargs",
    [
        {"worker_id": "w 1"},
        {"worker_id": ""},
        {"claim_id": "c|1"},
        {"count": 0},
        {"count": MAX_BATCH + 1},
        {"count": True},
        {"lease_ms": 0},
        {"lease_ms": 1.5},
        {"maintenance": -1},
        {"maintenance": MAX_BATCH + 1},
    ],
    ids=repr,
)
def test_claim_refuses_bad_arguments(ops: QueueOps, kwargs: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {"worker_id": "w1", **kwargs}
    with pytest.raises(ValidationError):
        ops.claim(**arguments)


def test_claim_parse_reads_leased_jobs(ops: QueueOps) -> None:
    first = [b"j1", encode({"a": 1}), 1, b"1-aa", 31_000]
    second = [b"j2", encode(None), 2, b"2-bb", 32_000]
    claimed = ops.claim("w1").parse([b"ok", 1_000, *first, *second])
    assert claimed.now_ms == 1_000 and not claimed.repeated
    assert claimed.jobs == [
        Job(QUEUE, "j1", {"a": 1}, 1, "1-aa", 31_000),
        Job(QUEUE, "j2", None, 2, "2-bb", 32_000),
    ]


def test_claim_parse_reads_empty_and_repeated_claims(ops: QueueOps) -> None:
    empty = ops.claim("w1").parse([b"empty", 5])
    assert (empty.jobs, empty.now_ms, empty.repeated) == ([], 5, False)
    repeated = ops.claim("w1").parse([b"duplicate", 6, b"j1", encode(1), 1, b"1-aa", 9])
    assert repeated.repeated and [job.id for job in repeated.jobs] == ["j1"]


def test_claim_parse_refuses_an_oversized_payload() -> None:
    reply = [b"ok", 1, b"j1", encode(b"x" * 64), 1, b"1-aa", 9]
    with pytest.raises(PayloadError):
        make_ops(max_payload_bytes=32).claim("w1").parse(reply)


# -- complete ------------------------------------------------------------------------------------


def test_complete_many_args_take_jobs_and_pairs(ops: QueueOps) -> None:
    job = Job(QUEUE, "j1", None, 1, "1-aa", 9)
    call = ops.complete_many([(job, {"ok": True}), (("j2", "2-bb"), None)])
    retention = Retention()
    assert call.args == (
        retention.max_completed,
        retention.trim_batch,
        2,
        *("j1", "1-aa", encode({"ok": True})),
        *("j2", "2-bb", encode(None)),
    )


def test_complete_uses_the_queue_retention() -> None:
    ops = make_ops(retention=Retention(max_completed=5, trim_batch=3))
    assert ops.complete(("j1", "1-aa")).args[:3] == (5, 3, 1)


@pytest.mark.parametrize(
    ("items", "error"),
    [
        ([], ValidationError),
        ([(("j1", "t"), None)] * (MAX_BATCH + 1), ValidationError),
        ([(("j 1", "t"), None)], ValidationError),
        ([(("j1", ""), None)], ValidationError),
        ([(("j1", "t" * 65), None)], ValidationError),
        ([(("j1", 7), None)], ValidationError),
        ([(("j1", "t"), object())], PayloadError),
        ([(("j1", "t"), "x" * 200)], PayloadError),
    ],
    ids=["empty", "too-many", "bad-id", "empty-token", "long-token", "int-token", "obj", "big"],
)
def test_complete_many_refuses_bad_items(items: list[Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        make_ops(max_payload_bytes=100).complete_many(items)


def test_complete_many_parse_gives_a_status_per_item(ops: QueueOps) -> None:
    call = ops.complete_many([(("a", "t"), 1), (("b", "t"), 2), (("c", "t"), 3)])
    statuses = call.parse([b"ok", b"ok", b"lease_lost", b"not_found"])
    assert [(s.id, s.status) for s in statuses] == [
        ("a", Status.OK),
        ("b", Status.LEASE_LOST),
        ("c", Status.NOT_FOUND),
    ]


def test_complete_parse_is_true_then_false_on_a_repeat(ops: QueueOps) -> None:
    call = ops.complete(("j1", "1-aa"), "done")
    assert call.parse([b"ok", b"ok"]) is True
    assert call.parse([b"ok", b"duplicate"]) is False


@pytest.mark.parametrize(
    ("item_status", "error"), [(b"lease_lost", LeaseLost), (b"not_found", JobNotFound)]
)
def test_complete_parse_raises_for_a_lost_lease_or_missing_job(
    ops: QueueOps, item_status: bytes, error: type[Exception]
) -> None:
    with pytest.raises(error) as caught:
        ops.complete(("j1", "1-aa")).parse([b"ok", item_status])
    assert isinstance(caught.value, JobError)
    assert (caught.value.queue, caught.value.job_id) == (QUEUE, "j1")


@pytest.mark.parametrize(
    "build",
    [
        lambda ops: ops.complete("j1"),
        lambda ops: ops.complete(("j1",)),
        lambda ops: ops.complete(("j1", "t", "x")),
        lambda ops: ops.complete_many([("j1", None)]),
        lambda ops: ops.fail("j1", "boom"),
        lambda ops: ops.heartbeat(["j1"]),
        lambda ops: ops.heartbeat(("ab", "cd")),
    ],
    ids=["complete-str", "1-tuple", "3-tuple", "many-str", "fail-str", "beat-str", "beat-pair"],
)
def test_a_lease_must_be_a_job_or_an_id_token_pair(
    ops: QueueOps, build: Callable[[QueueOps], Call[Any]]
) -> None:
    """A bare string unpacks into two characters: "j1" must not become job "j", token "1"."""
    with pytest.raises(ValidationError):
        build(ops)


@pytest.mark.parametrize(
    "build",
    [lambda ops: ops.requeue("job1"), lambda ops: ops.purge("dead", "ab")],
    ids=["requeue", "purge"],
)
def test_a_bare_string_is_not_a_list_of_ids(
    ops: QueueOps, build: Callable[[QueueOps], Call[Any]]
) -> None:
    """``requeue("job1")`` must not requeue jobs "j", "o", "b" and "1"."""
    with pytest.raises(ValidationError):
        build(ops)


# -- fail ----------------------------------------------------------------------------------------


def test_fail_args_default_to_the_job_backoff(ops: QueueOps) -> None:
    retention = Retention()
    call = ops.fail(("j1", "1-aa"), "boom")
    assert call.args == ("j1", "1-aa", b"boom", 1, -1, retention.max_dead, retention.trim_batch)


def test_fail_args_for_a_fixed_delay_and_a_non_retryable_failure(ops: QueueOps) -> None:
    assert ops.fail(("j1", "t"), "e", delay_ms=0).args[3:5] == (1, 0)
    assert ops.fail(("j1", "t"), "e", delay_ms=2_500).args[3:5] == (1, 2_500)
    assert ops.fail(("j1", "t"), "e", retryable=False).args[3:5] == (0, -1)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("x" * 70_000, b"x" * 65_536),
        ("x" * 65_536, b"x" * 65_536),
        ("é" * 40_000, ("é" * 40_000).encode()[:65_536]),
        ("", b""),
        ("bad \ud800 surrogate", b"bad ? surrogate"),
    ],
    ids=["long", "exact", "multibyte", "empty", "surrogate"],
)
def test_fail_sends_error_text_as_utf8_truncated_to_64_kib(
    ops: QueueOps, error: str, expected: bytes
) -> None:
    sent = ops.fail(("j1", "t"), error).args[2]
    assert sent == expected
    assert isinstance(sent, bytes) and len(sent) <= 65_536


@pytest.mark.parametrize(
    "kwargs",
    [
        {"error": None},
        {"error": b"bytes"},
        {"delay_ms": -1},
        {"delay_ms": 1.5},
        {"delay_ms": True},
        {"ref": ("j1", "")},
        {"ref": ("bad id", "t")},
    ],
    ids=repr,
)
def test_fail_refuses_bad_arguments(ops: QueueOps, kwargs: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {"ref": ("j1", "t"), "error": "boom", **kwargs}
    with pytest.raises(ValidationError):
        ops.fail(**arguments)


def test_fail_parse_reads_outcomes(ops: QueueOps) -> None:
    call = ops.fail(("j1", "t"), "boom")
    retry = call.parse([b"ok", b"retry", 5_000])
    assert (retry.outcome, retry.run_at_ms, retry.repeated) == (Outcome.RETRY, 5_000, False)
    dead = call.parse([b"ok", b"dead", 0])
    assert (dead.outcome, dead.run_at_ms, dead.repeated) == (Outcome.DEAD, 0, False)
    again = call.parse([b"duplicate", b"retry", 5_000])
    assert (again.outcome, again.repeated) == (Outcome.RETRY, True)


@pytest.mark.parametrize(
    ("status", "error"), [(b"lease_lost", LeaseLost), (b"not_found", JobNotFound)]
)
def test_fail_parse_raises_for_a_lost_lease_or_missing_job(
    ops: QueueOps, status: bytes, error: type[Exception]
) -> None:
    with pytest.raises(error, match="j1"):
        ops.fail(("j1", "t"), "boom").parse([status])


# -- heartbeat, reap, cancel ---------------------------------------------------------------------


def test_heartbeat_args_and_parse(ops: QueueOps) -> None:
    job = Job(QUEUE, "j1", None, 1, "1-aa", 9)
    call = ops.heartbeat([job, ("j2", "2-bb")], lease_ms=4_000)
    assert call.args == (4_000, 2, "j1", "1-aa", "j2", "2-bb")
    assert ops.heartbeat([job]).args == (0, 1, "j1", "1-aa")
    beat = call.parse([b"ok", 1_000, [b"j2"], [5_000, 0]])
    assert (beat.lost, beat.deadlines_ms, beat.now_ms) == (["j2"], [5_000, 0], 1_000)


@pytest.mark.parametrize(
    ("refs", "lease_ms"),
    [([], None), ([("j1", "t")] * (MAX_BATCH + 1), None), ([("j1", "t")], 0), ([("j1", "")], None)],
    ids=["empty", "too-many", "zero-lease", "empty-token"],
)
def test_heartbeat_refuses_bad_arguments(
    ops: QueueOps, refs: list[Any], lease_ms: int | None
) -> None:
    with pytest.raises(ValidationError):
        ops.heartbeat(refs, lease_ms=lease_ms)


def test_reap_args_and_parse() -> None:
    ops = make_ops(retention=Retention(max_completed=1, max_dead=2, max_cancelled=3))
    assert ops.reap(limit=50).args == (50, 1, 2, 3)
    reaped = ops.reap().parse([b"ok", 1, 2, 3, 4])
    assert (reaped.promoted, reaped.requeued, reaped.dead, reaped.trimmed) == (1, 2, 3, 4)


@pytest.mark.parametrize("limit", [0, MAX_BATCH + 1, True])
def test_reap_refuses_a_bad_limit(ops: QueueOps, limit: int) -> None:
    with pytest.raises(ValidationError):
        ops.reap(limit=limit)


def test_cancel_args_and_parse(ops: QueueOps) -> None:
    call = ops.cancel("j1")
    retention = Retention()
    assert call.args == ("j1", retention.max_cancelled, retention.trim_batch)
    assert call.parse([b"ok", b"waiting"]) is True
    assert call.parse([b"duplicate", b"cancelled"]) is False
    with pytest.raises(InvalidState) as caught:
        call.parse([b"bad_state", b"active"])
    assert (caught.value.state, caught.value.job_id) == ("active", "j1")
    with pytest.raises(JobNotFound):
        call.parse([b"not_found"])
    with pytest.raises(ValidationError):
        ops.cancel("j 1")


# -- requeue and purge ---------------------------------------------------------------------------


def test_requeue_args_and_parse(ops: QueueOps) -> None:
    assert ops.requeue().args == (100,)
    call = ops.requeue(["a", "b"], limit=5)
    assert call.args == (5, "a", "b")
    statuses = call.parse([b"ok", 1, b"a", b"ok", b"b", b"bad_state"])
    assert [(s.id, s.status) for s in statuses] == [("a", Status.OK), ("b", Status.BAD_STATE)]


@pytest.mark.parametrize(
    ("ids", "limit"),
    [(["x"] * (MAX_BATCH + 1), 1), (["a b"], 1), ([], 0), ([], MAX_BATCH + 1)],
    ids=["too-many", "bad-id", "zero-limit", "big-limit"],
)
def test_requeue_refuses_bad_arguments(ops: QueueOps, ids: list[str], limit: int) -> None:
    with pytest.raises(ValidationError):
        ops.requeue(ids, limit=limit)


@pytest.mark.parametrize("state", [State.COMPLETED, "dead", "cancelled"])
def test_purge_args_for_each_finished_state(ops: QueueOps, state: State | str) -> None:
    assert ops.purge(state, ["a"], limit=3).args == (State(state).value, 3, "a")
    assert ops.purge(state).args == (State(state).value, 100)


def test_purge_parse(ops: QueueOps) -> None:
    statuses = ops.purge("dead").parse([b"ok", 1, b"a", b"ok", b"b", b"not_found"])
    assert [(s.id, s.status) for s in statuses] == [("a", Status.OK), ("b", Status.NOT_FOUND)]


@pytest.mark.parametrize(
    ("state", "ids"),
    [("waiting", []), (State.ACTIVE, []), ("delayed", []), ("bogus", []), ("dead", ["x"] * 1001)],
    ids=["waiting", "active", "delayed", "unknown", "too-many"],
)
def test_purge_refuses_unfinished_states_and_big_batches(
    ops: QueueOps, state: str, ids: list[str]
) -> None:
    with pytest.raises(ValidationError):
        ops.purge(state, ids)


# -- inspect and stats ---------------------------------------------------------------------------


def test_inspect_parse_reads_the_whole_record(ops: QueueOps) -> None:
    call = ops.inspect("j1")
    assert call.args == ("j1",)
    info = call.parse([b"ok", 1_500, job_record(), encode({"p": 1}), None, b"last error"])
    assert (info.queue, info.id, info.state, info.outcome) == (
        QUEUE,
        "j1",
        State.ACTIVE,
        Outcome.RUNNING,
    )
    assert (info.attempt, info.max_attempts, info.priority, info.worker) == (1, 3, 5, "w1")
    assert (info.token, info.deadline_ms, info.now_ms) == ("1-00ff00ff00ff00ff", 31_000, 1_500)
    assert (info.created_ms, info.ready_ms, info.started_ms, info.finished_ms) == (
        900,
        950,
        1_000,
        0,
    )
    assert info.options == JobOptions(
        priority=5,
        max_attempts=3,
        lease_ms=30_000,
        backoff_ms=1_000,
        backoff_max_ms=60_000,
        jitter=0.25,
        keep_result_ms=86_400_000,
        keep_dead_ms=604_800_000,
    )
    assert (info.payload, info.result, info.error) == ({"p": 1}, None, "last error")


def test_inspect_parse_reads_a_never_claimed_job(ops: QueueOps) -> None:
    record = job_record(state=b"waiting", attempt=0, token=b"", outcome=b"", worker=b"")
    info = ops.inspect("j1").parse([b"ok", 1, record, encode(1), encode("r"), None])
    assert (info.state, info.outcome, info.token, info.worker) == (
        State.WAITING,
        Outcome.NONE,
        "",
        "",
    )
    assert (info.result, info.error) == ("r", None)


def test_inspect_parse_raises_job_not_found(ops: QueueOps) -> None:
    with pytest.raises(JobNotFound, match="j1"):
        ops.inspect("j1").parse([b"not_found", 1_000])


def test_stats_args_and_parse(ops: QueueOps) -> None:
    assert ops.stats().args == (100,)
    assert ops.stats(active_limit=0).args == (0,)
    reply = [b"ok", 2_000, [1, 2, 3, 4, 5, 6], 1_500, [b"j1", b"w1", 2, 9_000, 1_900]]
    stats = ops.stats().parse(reply)
    assert stats.now_ms == 2_000
    assert stats.counts == {
        State.WAITING: 1,
        State.DELAYED: 2,
        State.ACTIVE: 3,
        State.COMPLETED: 4,
        State.DEAD: 5,
        State.CANCELLED: 6,
    }
    assert (stats.oldest_waiting_ms, stats.oldest_waiting_age_ms) == (1_500, 500)
    assert [(a.id, a.worker, a.attempt, a.deadline_ms, a.started_ms) for a in stats.active] == [
        ("j1", "w1", 2, 9_000, 1_900)
    ]
    idle = ops.stats().parse([b"ok", 2_000, [0] * 6, 0, []])
    assert (idle.oldest_waiting_ms, idle.oldest_waiting_age_ms, idle.active) == (None, None, [])


@pytest.mark.parametrize("active_limit", [-1, MAX_BATCH + 1, 1.0])
def test_stats_refuses_a_bad_active_limit(ops: QueueOps, active_limit: int) -> None:
    with pytest.raises(ValidationError):
        ops.stats(active_limit=active_limit)
