"""Argument checks made in Python before anything is sent. The scripts check the same bounds
again (lua/lib/args.lua), for callers that reach them directly."""

from __future__ import annotations

import math
import re
from typing import Any

from ._models import JobOptions
from .errors import ValidationError

ID_PATTERN = re.compile(r"[A-Za-z0-9_.:@/+=\-]{1,128}")
MAX_MS = 100 * 365 * 24 * 3600 * 1000
MAX_BATCH = 1000
MAX_ERROR_BYTES = 65536


def check_id(value: Any, what: str = "job id") -> str:
    """Return ``value`` if it is a valid id: 1-128 of letters, digits and ``_ . : @ / + = -``."""
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise ValidationError(
            f"invalid {what} {value!r}: use 1-128 letters, digits or _ . : @ / + = -"
        )
    return value


def check_int(value: Any, what: str, low: int, high: int) -> int:
    """Return ``value`` if it is an int (not a bool) in ``low..high``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(f"{what} must be an integer in {low}..{high}, not {value!r}")
    return value


def check_batch(items: list[Any], what: str) -> None:
    """Refuse an empty batch or one over :data:`MAX_BATCH` items."""
    if not 1 <= len(items) <= MAX_BATCH:
        raise ValidationError(f"{what} takes 1..{MAX_BATCH} items, not {len(items)}")


def option_args(options: JobOptions) -> tuple[int, ...]:
    """The ten numbers of one option set, in enqueue.lua's order, each checked."""
    jitter = options.jitter
    if (
        isinstance(jitter, bool)
        or not isinstance(jitter, int | float)
        or not (math.isfinite(jitter) and 0.0 <= jitter <= 1.0)
    ):
        raise ValidationError(f"jitter must be a number in 0.0..1.0, not {jitter!r}")
    run_at = options.run_at_ms
    return (
        check_int(options.priority, "priority", -1000, 1000),
        check_int(options.delay_ms, "delay_ms", 0, MAX_MS),
        0 if run_at is None else check_int(run_at, "run_at_ms", 1, MAX_MS),
        check_int(options.max_attempts, "max_attempts", 1, 1000),
        check_int(options.lease_ms, "lease_ms", 1, MAX_MS),
        check_int(options.backoff_ms, "backoff_ms", 0, MAX_MS),
        check_int(options.backoff_max_ms, "backoff_max_ms", 0, MAX_MS),
        round(jitter * 1000),
        check_int(options.keep_result_ms, "keep_result_ms", 0, MAX_MS),
        check_int(options.keep_dead_ms, "keep_dead_ms", 0, MAX_MS),
    )
