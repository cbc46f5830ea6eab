"""Scripts survive ``SCRIPT FLUSH``, and bad queue names never reach Redis.

After ``SCRIPT FLUSH`` (as after a restart or a failover) every Queue method still works,
because redis-py answers ``NOSCRIPT`` by loading the script and sending it again; a Queue built
before the flush keeps working too. A queue name that could move the hash tag or is otherwise
invalid raises :class:`ConfigError` before any key name is built.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
import redis

from scheduler import ConfigError, JobSpec, Outcome, Queue, State, Status
from scheduler._keys import QueueKeys
from scheduler._scripts import all_scripts

SHAS = [hashlib.sha1(src.text.encode()).hexdigest() for src in all_scripts().values()]
"""The SHA1 of every script, as EVALSHA names it."""


def loaded_scripts(r: redis.Redis) -> int:
    """How many of the package's scripts the server has in its script cache."""
    return sum(r.script_exists(*SHAS))


def after_flush(r: redis.Redis, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Empty the server's script cache, then call ``method``: it must reload its script."""
    r.script_flush()
    assert loaded_scripts(r) == 0
    result = method(*args, **kwargs)
    assert loaded_scripts(r) == 1
    return result


def test_every_method_works_after_a_script_flush(r: redis.Redis, q: Queue) -> None:
    assert after_flush(r, q.enqueue, "a", id="a").created is True
    specs = [JobSpec(name, id=name) for name in ("b", "c", "d")]
    assert [e.created for e in after_flush(r, q.enqueue_many, specs)] == [True] * 3
    a, b, c, d = after_flush(r, q.claim, "worker-1", count=4).jobs
    assert after_flush(r, q.heartbeat, [a, b, c, d]).lost == []
    assert after_flush(r, q.complete, a, "done-a") is True
    assert after_flush(r, q.complete_many, [(b, "done-b")])[0].status is Status.OK
    assert after_flush(r, q.fail, c, "broken", retryable=False).outcome is Outcome.DEAD
    assert after_flush(r, q.release, [d])[0].status is Status.OK
    assert after_flush(r, q.cancel, "d") is True
    assert after_flush(r, q.requeue, ["c"])[0].status is Status.OK
    assert after_flush(r, q.purge, "completed", ["a"])[0].status is Status.OK
    assert after_flush(r, q.reap).promoted == 0
    assert after_flush(r, q.inspect, "b").result == "done-b"
    stats = after_flush(r, q.stats)
    assert stats.counts[State.WAITING] == 1
    assert stats.counts[State.COMPLETED] == 1
    assert stats.counts[State.CANCELLED] == 1


def test_a_queue_built_before_the_flush_keeps_working(r: redis.Redis, q: Queue) -> None:
    r.script_flush()
    q.enqueue("before", id="before")
    assert loaded_scripts(r) == 1

    r.script_flush()
    later = Queue(r, "test")

    q.enqueue("after", id="after")
    claimed = later.claim("worker-1", count=2).jobs
    assert [job.id for job in claimed] == ["before", "after"]
    assert [s.status for s in q.complete_many([(job, None) for job in claimed])] == [Status.OK] * 2
    assert later.stats().counts[State.COMPLETED] == 2


BAD_NAMES = ["a{b}", "{test}", "a}b", "a b", "", "x" * 65, "x\n", "a:b", "é", None, b"test"]
"""Queue names to refuse: hash-tag braces, separators, empty, too long, not text."""


@pytest.fixture
def key_builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every queue whose key schema is set up (a QueueKeys built and validated) and
    every key name built from one, while the test runs."""
    built: list[str] = []
    original_init, original_key = QueueKeys.__post_init__, QueueKeys.key

    def recording_init(self: QueueKeys) -> None:
        original_init(self)
        built.append(f"queue {self.queue}")

    def recording_key(self: QueueKeys, part: str) -> str:
        name = original_key(self, part)
        built.append(name)
        return name

    monkeypatch.setattr(QueueKeys, "__post_init__", recording_init)
    monkeypatch.setattr(QueueKeys, "key", recording_key)
    return built


@pytest.mark.parametrize("name", BAD_NAMES)
def test_an_invalid_queue_name_is_refused_before_any_key_is_built(
    r: redis.Redis, key_builds: list[str], name: Any
) -> None:
    r.script_flush()

    with pytest.raises(ConfigError):
        Queue(r, name)

    assert key_builds == []
    assert r.dbsize() == 0
    assert loaded_scripts(r) == 0


@pytest.mark.parametrize("name", ["x" * 64, "a", "A-z_0.9"])
def test_names_at_the_edge_of_the_rules_are_accepted(
    r: redis.Redis, key_builds: list[str], name: str
) -> None:
    queue = Queue(r, name)
    queue.enqueue("x", id="job")
    assert queue.inspect("job").queue == name
    assert f"queue {name}" in key_builds
    assert f"scheduler:{{{name}}}:meta" in key_builds
    assert r.exists(f"scheduler:{{{name}}}:meta") == 1
