"""Retry arithmetic, the Python twin of ``lua/lib/backoff.lua`` (pure, no clock).

After attempt ``n`` fails, the next one waits ``min(backoff_max_ms, backoff_ms * 2**(n-1))``,
of which a share ``jitter`` is drawn at random: the delay lies in ``[d - floor(d * jitter), d]``.
The draw comes from the lease token (SHA-1), so it is the same for a repeated call, and this
module can compute it exactly (:func:`retry_delay_ms`).
"""

from __future__ import annotations

import hashlib
import math

from ._models import JobOptions


def nominal_delay_ms(options: JobOptions, attempt: int) -> int:
    """The delay before the retry that follows failed attempt ``attempt`` (1-based), no jitter."""
    exponent = min(max(attempt - 1, 0), 60)
    return int(min(options.backoff_max_ms, options.backoff_ms * 2**exponent))


def delay_bounds_ms(options: JobOptions, attempt: int) -> tuple[int, int]:
    """The lowest and highest delay the script may draw after failed attempt ``attempt``."""
    delay = nominal_delay_ms(options, attempt)
    spread = math.floor(delay * round(options.jitter * 1000) / 1000)
    return delay - spread, delay


def retry_delay_ms(options: JobOptions, attempt: int, token: str) -> int:
    """The delay the script draws after failed attempt ``attempt`` of the lease ``token``:
    52 bits of the SHA-1 of ``"<token>:retry"``, modulo the spread + 1."""
    delay = nominal_delay_ms(options, attempt)
    spread = math.floor(delay * round(options.jitter * 1000) / 1000)
    if spread <= 0:
        return delay
    draw = int(hashlib.sha1(f"{token}:retry".encode()).hexdigest()[:13], 16)
    return delay - spread + draw % (spread + 1)
