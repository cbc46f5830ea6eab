"""Test-only helpers. Production code never imports this module.

**The test build and the test clock.** Every script reads the time once from Redis ``TIME``.
A test that must move a queue's clock (to expire a lease, or make a delayed job due, without
waiting) runs the *test build* of the scripts (:data:`scheduler._scripts.TEST_BUILD`), in which
each script that reads the time also reads the queue's ``clock`` key, passed as one more KEYS
slot. Production scripts take no clock key and never read one.

* ``use_test_build()`` makes every queue this process builds from then on load the test build
  (a test session calls it once, before it makes any queue);
* ``advance_clock(client, queue, ms)`` moves the queue's clock ``ms`` ahead (cumulative);
* ``pin_clock(client, queue, at_ms)`` freezes it at ``at_ms``;
* ``reset_clock(client, queue)`` returns it to the server's own time.

The clock functions write the ``clock`` key, which only the test build reads.
"""

from __future__ import annotations

from typing import Any

from ._keys import QueueKeys
from ._scripts import PRODUCTION, TEST_BUILD, select_build
from .client import DEFAULT_PREFIX


def use_test_build(enabled: bool = True) -> None:
    """Load the test build of the scripts in every queue this process builds from now on
    (``enabled=False``: the production build again)."""
    select_build(TEST_BUILD if enabled else PRODUCTION)


def _clock_key(queue: str, prefix: str) -> str:
    return QueueKeys(prefix, queue).key("clock")


def advance_clock(client: Any, queue: str, ms: int, *, prefix: str = DEFAULT_PREFIX) -> int:
    """Move the queue's clock ``ms`` ahead of where it is; returns the total offset.

    A pinned clock stays pinned and moves by ``ms``.
    """
    key = _clock_key(queue, prefix)
    current = client.get(key)
    if current is not None and current.startswith(b"="):
        total = int(current[1:]) + ms
        client.set(key, f"={total}")
        return total
    total = (int(current[1:]) if current is not None else 0) + ms
    client.set(key, f"+{total}")
    return total


def pin_clock(client: Any, queue: str, at_ms: int, *, prefix: str = DEFAULT_PREFIX) -> None:
    """Freeze the queue's clock at ``at_ms`` (Unix ms) until moved or reset."""
    client.set(_clock_key(queue, prefix), f"={at_ms}")


def reset_clock(client: Any, queue: str, *, prefix: str = DEFAULT_PREFIX) -> None:
    """Return the queue's clock to the server's own time."""
    client.delete(_clock_key(queue, prefix))
