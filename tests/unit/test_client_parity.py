"""The sync and asyncio clients are one surface: the same public methods with the same
signatures, the async ones awaiting."""

from __future__ import annotations

import inspect

from scheduler import Queue
from scheduler.aio import AsyncQueue


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(cls).items()
        if callable(member) and not name.startswith("_")
    }


def test_both_clients_have_the_same_public_methods_and_signatures() -> None:
    sync, asynchronous = public_methods(Queue), public_methods(AsyncQueue)
    assert sorted(sync) == sorted(asynchronous)
    for name, signature in sync.items():
        assert str(asynchronous[name]) == str(signature), name


def test_every_async_method_is_a_coroutine_function() -> None:
    for name in public_methods(AsyncQueue):
        assert inspect.iscoroutinefunction(getattr(AsyncQueue, name)), name
