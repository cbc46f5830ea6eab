"""Payload and result encoding: msgpack only, never pickle.

Decoding is strict: UTF-8 strings (``raw=False``), string or bytes map keys only
(``strict_map_key=True``), a size cap, and every ext type refused except msgpack's own timestamp.
Nothing a producer writes can make a worker build an object other than the plain types
(``dict``, ``list``, ``str``, ``bytes``, ``int``, ``float``, ``bool``, ``None``, and ``Timestamp``).
"""

from __future__ import annotations

from typing import Any

import msgpack

from .errors import PayloadError

DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
"""The default size cap for one payload or result: 1 MiB."""


_NIL = b"\xc0"


class Encoded(bytes):
    """A value :func:`encode` has encoded already: passed through as it is (after the size
    check), so that a worker can encode each result as soon as its handler returns, fail
    just that job when it cannot, and send the bytes later."""


_SCALARS = frozenset({str, bytes, int, float, bool})


def _refuse_ext(code: int, data: bytes) -> Any:
    raise PayloadError(f"msgpack ext type {code} is not accepted")


def encode(
    value: Any, *, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES, what: str = "payload"
) -> bytes:
    """Encode ``value`` with msgpack, or raise :class:`PayloadError` before anything is sent.

    Only what :func:`decode` accepts back is encoded: map keys must be ``str`` or ``bytes``, and
    ext types are refused. Tuples are encoded as lists (they decode as lists).
    """
    if value is None:
        return _NIL
    kind = type(value)
    if kind is Encoded:
        if len(value) > max_bytes:
            raise PayloadError(f"{what} is {len(value)} bytes, over the limit of {max_bytes}")
        return value  # type: ignore[no-any-return]
    try:
        data: bytes = msgpack.packb(value, use_bin_type=True, datetime=False)
    except (TypeError, ValueError, OverflowError) as exc:
        raise PayloadError(f"{what} cannot be encoded with msgpack: {exc}") from None
    if len(data) > max_bytes:
        raise PayloadError(f"{what} is {len(data)} bytes encoded, over the limit of {max_bytes}")
    # msgpack packs some values that the strict decoder refuses (a map key that is not str or
    # bytes, an ExtType). Such a job could never be read by a worker: refuse it here instead.
    # A plain scalar always decodes back, so it skips the check.
    if kind not in _SCALARS:
        decode(data, max_bytes=max_bytes, what=what)
    return data


def decode(
    data: bytes, *, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES, what: str = "payload"
) -> Any:
    """Decode msgpack ``data`` strictly, or raise :class:`PayloadError`."""
    if len(data) > max_bytes:
        raise PayloadError(f"{what} is {len(data)} bytes, over the limit of {max_bytes}")
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            ext_hook=_refuse_ext,
        )
    except PayloadError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
        raise PayloadError(f"{what} is not valid msgpack: {type(exc).__name__}") from None
