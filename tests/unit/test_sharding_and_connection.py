"""The pure parts of sharding (which shard a call goes to, how replies add up) and of
connecting (the cluster flag of a URL, startup nodes). No Redis."""

from __future__ import annotations

import pytest

from scheduler import Claimed, ConfigError, Job, ValidationError
from scheduler._keys import validate_queue_name
from scheduler.connection import split_cluster_flag
from scheduler.sharded import ShardRouter


def job(queue: str, job_id: str = "a") -> Job:
    return Job(queue, job_id, None, 1, "1-00", 0)


def test_shard_names_are_valid_queue_names_and_distinct() -> None:
    router = ShardRouter("orders", 4)
    assert router.names == ["orders:0", "orders:1", "orders:2", "orders:3"]
    assert all(validate_queue_name(n) == n for n in router.names)
    with pytest.raises(ConfigError):
        validate_queue_name("orders:x")


@pytest.mark.parametrize("shards", [0, -1, 1025, True, 2.0])
def test_a_bad_shard_count_is_refused(shards: object) -> None:
    with pytest.raises(ConfigError):
        ShardRouter("q", shards)  # type: ignore[arg-type]


def test_enqueue_goes_round_robin_or_by_key_or_by_id() -> None:
    router = ShardRouter("q", 3)
    assert [router.for_enqueue(None, None) for _ in range(6)] == [0, 1, 2, 0, 1, 2]
    assert len({router.for_enqueue(None, "customer-1") for _ in range(5)}) == 1
    assert router.for_enqueue("id-1", None) == router.for_enqueue("id-1", None)
    with pytest.raises(ValidationError):
        router.for_enqueue(None, "")


def test_claims_start_one_shard_further_each_time_and_a_repeat_starts_where_it_did() -> None:
    router = ShardRouter("q", 3)
    firsts = [router.claim_plan(f"c{n}")[0][0] for n in range(6)]
    assert firsts == [0, 1, 2, 0, 1, 2]
    plan = router.claim_plan("same")
    assert router.claim_plan("same") == plan
    assert [sub for _, sub in plan] == [f"same.{i}" for i, _ in plan]


def test_leases_go_to_their_own_shard_and_tuples_are_refused() -> None:
    router = ShardRouter("q", 2)
    assert router.shard_of(job("q:1")) == 1
    with pytest.raises(ValidationError):
        router.shard_of(("a", "1-00"))
    with pytest.raises(ValidationError):
        router.shard_of(job("other:0"))


def test_claims_merge_and_the_next_due_time_is_the_earliest() -> None:
    empty = ShardRouter.merge_claims([Claimed([], 10, next_ms=50), Claimed([], 11, next_ms=30)])
    assert empty.jobs == [] and empty.next_ms == 30 and empty.now_ms == 10
    full = ShardRouter.merge_claims([Claimed([job("q:0")], 10), Claimed([], 11, next_ms=30)])
    assert len(full.jobs) == 1 and full.next_ms is None


def test_per_item_answers_come_back_in_the_order_given() -> None:
    router = ShardRouter("q", 2)
    items = [job("q:1", "a"), job("q:0", "b"), job("q:1", "c")]
    parts = router.group(items, lambda j: j)
    answers = {i: [j.id.upper() for _, j in group] for i, group in parts.items()}
    assert ShardRouter.scatter(3, parts, answers) == ["A", "B", "C"]


@pytest.mark.parametrize(
    ("url", "rest", "cluster"),
    [
        ("redis://h:1/0", "redis://h:1/0", False),
        ("redis://h:1/0?cluster=yes", "redis://h:1/0", True),
        ("redis://h:1/0?cluster=true&ssl_cert_reqs=none", "redis://h:1/0?ssl_cert_reqs=none", True),
        ("redis://h:1/0?cluster=no", "redis://h:1/0", False),
    ],
)
def test_the_cluster_flag_of_a_url(url: str, rest: str, cluster: bool) -> None:
    assert split_cluster_flag(url) == (rest, cluster)


def test_a_bad_cluster_flag_is_refused() -> None:
    with pytest.raises(ConfigError):
        split_cluster_flag("redis://h:1/0?cluster=maybe")
