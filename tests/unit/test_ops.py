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
    RecordUnreadable,
    Retention,
    ScriptError,
    State,
    Status,
    Unreadable,
    UnreadableRecord,
    ValidationError,
)
from scheduler._codec import encode
from scheduler._ops import NOT_STARTED, Batch, Call, QueueOps, split_by_bytes
from scheduler._scripts import SCRIPT_NAMES, all_scripts
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
    max_call_bytes: int = 4 * MIB,
) -> QueueOps:
    """A QueueOps built the way the client builds it."""
    return build_ops(name, prefix, defaults, retention, max_payload_bytes, max_call_bytes)


@pytest.fixture
def ops() -> QueueOps:
    """The pure core of queue ``test`` with default settings."""
    return make_ops()


def header_keys(script: str, prefix: str = PREFIX, queue: str = QUEUE) -> tuple[str, ...]:
    """The full key names a script's header asks for, in order (the test build, which these
    tests load, adds its clock key after them)."""
    parts = header_key_parts(script_file(script))
    if all_scripts()[script].key_parts != parts:
        parts = (*parts, "clock")
    return tuple(f"{prefix}:{{{queue}}}:{part}" for part in parts)


def single(batch: Batch[Any]) -> Call[list[Any]]:
    """The one call of a batch that fits the byte budget."""
    (call,) = batch.calls
    return call


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
        "leased_ms": 1_000,
        "started_ms": 1_200,
        "finished_ms": 0,
        "payload_bytes": 7,
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
        ({"max_call_bytes": 0}, ConfigError),
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
    call = single(ops.enqueue_many(specs))
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
    call = single(
        make_ops(defaults=defaults).enqueue_many(
            [JobSpec(1, "a"), JobSpec(2, "b", defaults), JobSpec(3, "c")]
        )
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
    reply = [b"ok", 1, b"a", b"ok", b"waiting", b"b", b"duplicate", b"completed", b"c"]
    reply += [b"duplicate", b""]
    specs = [JobSpec(1, "a"), JobSpec(2, "b"), JobSpec(3, "c")]
    a, b, c = single(ops.enqueue_many(specs)).parse(reply)
    assert (a.id, a.created, a.state) == ("a", True, State.WAITING)
    assert (b.id, b.created, b.state) == ("b", False, State.COMPLETED)
    assert (c.id, c.created, c.state) == ("c", False, None)  # a record this version cannot read
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
    budget, window = ops.max_call_bytes, Retention().repeat_window_ms
    assert call.args == ("w1", "c-1", 5, 2_000, 7, budget, window)
    assert ops.claim("w1", claim_id="c-1").args == ("w1", "c-1", 1, 0, 100, budget, window)
    assert make_ops(max_call_bytes=77).claim("w1").args[5] == 77


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


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (encode(b"x" * 64), "over the limit of 32"),
        (b"\xc1", "not valid msgpack"),
        (b"\xd4\x05\x00", "ext type 5"),
        (b"\x81\x01\x02", "not valid msgpack"),
        (b"", "not valid msgpack"),
    ],
    ids=["oversized", "never-used-byte", "ext-type", "int-key", "empty"],
)
def test_claim_parse_fails_only_the_job_whose_payload_cannot_be_decoded(
    body: bytes, reason: str
) -> None:
    good = [b"j1", encode("fine"), 1, b"1-aa", 9]
    bad = [b"j2", body, 1, b"1-bb", 9]
    claimed = make_ops(max_payload_bytes=32).claim("w1").parse([b"ok", 1, *good, *bad, *good])
    first, poison, third = claimed.jobs
    assert first.payload == third.payload == "fine" and first.payload_error is None
    assert poison.payload is None and poison.payload_error is not None
    assert reason in poison.payload_error and poison.token == "1-bb"


# -- complete ------------------------------------------------------------------------------------


def test_complete_many_args_take_jobs_and_pairs(ops: QueueOps) -> None:
    job = Job(QUEUE, "j1", None, 1, "1-aa", 9)
    call = single(ops.complete_many([(job, {"ok": True}), (("j2", "2-bb"), None)]))
    retention = Retention()
    assert call.args == (
        retention.max_completed,
        retention.trim_batch,
        retention.repeat_window_ms,
        2,
        *("j1", "1-aa", encode({"ok": True})),
        *("j2", "2-bb", encode(None)),
    )


def test_complete_uses_the_queue_retention() -> None:
    ops = make_ops(retention=Retention(max_completed=5, trim_batch=3, repeat_window_ms=9))
    assert ops.complete(("j1", "1-aa")).args[:4] == (5, 3, 9, 1)


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
    items = [(("a", "t"), 1), (("b", "t"), 2), (("c", "t"), 3), (("d", "t"), 4)]
    call = single(ops.complete_many(items))
    statuses = call.parse([b"ok", b"ok", b"lease_lost", b"not_found", b"unreadable"])
    assert [(s.id, s.status) for s in statuses] == [
        ("a", Status.OK),
        ("b", Status.LEASE_LOST),
        ("c", Status.NOT_FOUND),
        ("d", Status.UNREADABLE),
    ]


def test_complete_parse_is_true_then_false_on_a_repeat(ops: QueueOps) -> None:
    call = ops.complete(("j1", "1-aa"), "done")
    assert call.parse([b"ok", b"ok"]) is True
    assert call.parse([b"ok", b"duplicate"]) is False


@pytest.mark.parametrize(
    ("item_status", "error"),
    [(b"lease_lost", LeaseLost), (b"not_found", JobNotFound), (b"unreadable", RecordUnreadable)],
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
    assert call.args == (
        *("j1", "1-aa", b"boom", 1, -1),
        *(retention.max_dead, retention.trim_batch, retention.repeat_window_ms),
    )


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
    ("status", "error"),
    [(b"lease_lost", LeaseLost), (b"not_found", JobNotFound), (b"unreadable", RecordUnreadable)],
)
def test_fail_parse_raises_for_a_lost_lease_or_missing_job(
    ops: QueueOps, status: bytes, error: type[Exception]
) -> None:
    with pytest.raises(error, match="j1"):
        ops.fail(("j1", "t"), "boom").parse([status])


# -- heartbeat, reap, cancel ---------------------------------------------------------------------


def test_heartbeat_args_and_parse(ops: QueueOps) -> None:
    job = Job(QUEUE, "j1", None, 1, "1-aa", 9)
    call = ops.heartbeat([job, ("j2", "2-bb")], lease_ms=4_000, started={"2-bb": 250})
    assert call.args == (4_000, 2, "j1", "1-aa", NOT_STARTED, "j2", "2-bb", 250)
    assert ops.heartbeat([job]).args == (0, 1, "j1", "1-aa", NOT_STARTED)
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


@pytest.mark.parametrize("ago", [-1, 1.5, True, "5", 10**15])
def test_heartbeat_and_release_refuse_a_bad_started_report(ops: QueueOps, ago: Any) -> None:
    with pytest.raises(ValidationError):
        ops.heartbeat([("j1", "t")], started={"t": ago})
    with pytest.raises(ValidationError):
        ops.release([("j1", "t")], started={"t": ago})


def test_release_args_carry_the_started_report(ops: QueueOps) -> None:
    call = ops.release([("a", "1-aa"), ("b", "1-bb")], started={"1-bb": 0})
    assert call.args == (2, "a", "1-aa", NOT_STARTED, "b", "1-bb", 0)


def test_reap_args_and_parse() -> None:
    retention = Retention(max_completed=1, max_dead=2, max_cancelled=3, repeat_window_ms=4)
    ops = make_ops(retention=retention)
    assert ops.reap(limit=50).args == (50, 1, 2, 3, 4)
    reaped = ops.reap().parse([b"ok", 1, 2, 3, 4])
    assert (reaped.promoted, reaped.requeued, reaped.dead, reaped.trimmed) == (1, 2, 3, 4)


@pytest.mark.parametrize("limit", [0, MAX_BATCH + 1, True])
def test_reap_refuses_a_bad_limit(ops: QueueOps, limit: int) -> None:
    with pytest.raises(ValidationError):
        ops.reap(limit=limit)


def test_cancel_args_and_parse(ops: QueueOps) -> None:
    call = ops.cancel("j1")
    retention = Retention()
    assert call.args == (
        "j1",
        retention.max_cancelled,
        retention.trim_batch,
        retention.repeat_window_ms,
    )
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
    window = Retention().repeat_window_ms
    assert ops.requeue(request_id="r1").args == ("r1", window, 100)
    call = ops.requeue(["a", "b"], limit=5, request_id="r2")
    assert call.args == ("r2", window, 5, "a", "b")
    statuses = call.parse([b"ok", 1, b"a", b"ok", b"b", b"bad_state"])
    assert [(s.id, s.status) for s in statuses] == [("a", Status.OK), ("b", Status.BAD_STATE)]
    repeated = call.parse([b"duplicate", 1, b"a", b"ok", b"b", b"bad_state"])
    assert repeated == statuses


def test_requeue_and_purge_make_a_fresh_request_id_when_none_is_given(ops: QueueOps) -> None:
    for build in (lambda: ops.requeue(), lambda: ops.purge("dead")):
        first, second = build().args[0], build().args[0]
        assert isinstance(first, str) and NEW_ID.fullmatch(first) and first != second


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
    window = Retention().repeat_window_ms
    value = State(state).value
    assert ops.purge(state, ["a"], limit=3, request_id="p").args == ("p", window, value, 3, "a")
    assert ops.purge(state, request_id="p").args == ("p", window, value, 100)


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
    info = call.parse([b"ok", 1_500, job_record(), encode({"p": 1}), None, b"last error", 0])
    assert (info.queue, info.id, info.state, info.outcome) == (
        QUEUE,
        "j1",
        State.ACTIVE,
        Outcome.RUNNING,
    )
    assert (info.attempt, info.max_attempts, info.priority, info.worker) == (1, 3, 5, "w1")
    assert (info.token, info.deadline_ms, info.now_ms) == ("1-00ff00ff00ff00ff", 31_000, 1_500)
    assert (info.created_ms, info.ready_ms, info.leased_ms, info.started_ms) == (
        900,
        950,
        1_000,
        1_200,
    )
    assert (info.finished_ms, info.payload_bytes, info.stub) == (0, 7, False)
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
    info = ops.inspect("j1").parse([b"ok", 1, record, encode(1), encode("r"), None, 0])
    assert (info.state, info.outcome, info.token, info.worker) == (
        State.WAITING,
        Outcome.NONE,
        "",
        "",
    )
    assert (info.result, info.error) == ("r", None)


def test_inspect_parse_keeps_what_it_cannot_decode_beside_the_reason(ops: QueueOps) -> None:
    reply = [b"ok", 1, job_record(), b"\xc1", b"\xd4\x05\x00", b"boom", 1]
    info = ops.inspect("j1").parse(reply)
    assert (info.payload, info.raw_payload, info.result, info.raw_result) == (
        None,
        b"\xc1",
        None,
        b"\xd4\x05\x00",
    )
    assert info.payload_error and "not valid msgpack" in info.payload_error
    assert info.result_error and "ext type 5" in info.result_error
    assert info.stub and info.error == "boom"


@pytest.mark.parametrize(
    ("reason", "quarantined"), [(b"newer", 0), (b"corrupt", 1_234)], ids=["newer", "corrupt"]
)
def test_inspect_parse_raises_record_unreadable_with_what_is_stored(
    ops: QueueOps, reason: bytes, quarantined: int
) -> None:
    reply = [b"unreadable", 2_000, reason, b"\x09raw", b"payload", b"why", quarantined]
    with pytest.raises(RecordUnreadable, match="j1") as caught:
        ops.inspect("j1").parse(reply)
    record = caught.value.record
    assert isinstance(record, UnreadableRecord)
    assert (record.reason, record.record, record.payload, record.note) == (
        Unreadable(reason.decode()),
        b"\x09raw",
        b"payload",
        "why",
    )
    assert record.quarantined_ms == (quarantined or None) and record.now_ms == 2_000


def test_inspect_parse_raises_job_not_found(ops: QueueOps) -> None:
    with pytest.raises(JobNotFound, match="j1"):
        ops.inspect("j1").parse([b"not_found", 1_000])


def test_stats_args_and_parse(ops: QueueOps) -> None:
    assert ops.stats().args == (100,)
    assert ops.stats(active_limit=0).args == (0,)
    active = [b"j1", b"w1", 2, 9_000, 1_900, 1_950, b"j2", b"w1", 1, 9_500, 1_980, 0]
    reply = [b"ok", 2_000, [1, 2, 3, 4, 5, 6], 1_500, active, [1, 7, 8, 9]]
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
    assert [
        (a.id, a.worker, a.attempt, a.deadline_ms, a.leased_ms, a.started_ms, a.is_running)
        for a in stats.active
    ] == [("j1", "w1", 2, 9_000, 1_900, 1_950, True), ("j2", "w1", 1, 9_500, 1_980, 0, False)]
    assert (stats.running, stats.stubs, stats.quarantined, stats.unreadable) == (1, 7, 8, 9)
    idle = ops.stats().parse([b"ok", 2_000, [0] * 6, 0, [], [0, 0, 0, 0]])
    assert (idle.oldest_waiting_ms, idle.oldest_waiting_age_ms, idle.active) == (None, None, [])


@pytest.mark.parametrize("active_limit", [-1, MAX_BATCH + 1, 1.0])
def test_stats_refuses_a_bad_active_limit(ops: QueueOps, active_limit: int) -> None:
    with pytest.raises(ValidationError):
        ops.stats(active_limit=active_limit)


# -- the byte budget -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sizes", "budget", "parts"),
    [
        ([1, 1, 1], 10, [[0, 1, 2]]),
        ([4, 4, 4], 8, [[0, 1], [2]]),
        ([9, 1, 1], 8, [[0], [1, 2]]),
        ([1, 9, 1], 8, [[0], [1], [2]]),
        ([8, 8], 8, [[0], [1]]),
        ([], 8, []),
    ],
)
def test_split_by_bytes_keeps_each_part_within_the_budget(
    sizes: list[int], budget: int, parts: list[list[int]]
) -> None:
    assert [list(part) for part in split_by_bytes(sizes, budget)] == parts


def test_a_batch_over_the_byte_budget_is_sent_in_several_calls_in_order() -> None:
    ops = make_ops(max_call_bytes=100)
    specs = [JobSpec(b"x" * 40, f"j{i}") for i in range(5)]
    batch = ops.enqueue_many(specs)
    assert [len(call.args) for call in batch.calls] == [1 + 10 + 1 + 3 * 2] * 2 + [1 + 10 + 1 + 3]
    sent = [call.args[12::3] for call in batch.calls]
    assert sent == [("j0", "j1"), ("j2", "j3"), ("j4",)]
    completes = ops.complete_many([((f"j{i}", "1-aa"), b"y" * 60) for i in range(3)])
    assert [call.args[4::3] for call in completes.calls] == [("j0",), ("j1",), ("j2",)]


def test_max_call_bytes_is_checked() -> None:
    for bad in (0, -1, 2**31, 1.5, True):
        with pytest.raises(ConfigError):
            make_ops(max_call_bytes=bad)  # type: ignore[arg-type]
