"""Retry arithmetic, the Python twin of ``lua/lib/backoff.lua`` (pure, no clock).

After attempt ``n`` fails, the next one waits ``min(backoff_max_ms, backoff_ms * 2**(n-1))``,
of which a share ``jitter`` is drawn at random: the delay lies in ``[d - floor(d * jitter), d]``.
The script draws the delay; this module states its bounds, for tests and documentation.
"""

from __future__ import annotations

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
