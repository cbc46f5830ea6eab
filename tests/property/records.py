"""Job records as bytes, in every layout ``lua/lib/job.lua`` reads: version 3 (and its stub),
and the earlier versions 1 and 2, which the scripts migrate on read. Pure Python, for the
property test: it plants records of an older version, and corrupt or newer ones, over the
records of known jobs.

Each layout is a list of (field, code) in the order of the Lua ``struct`` format string of
lib/job.lua; the codes are those of that format: ``B`` one unsigned byte, ``H``/``h`` two bytes
unsigned/signed, ``i4``/``i6``/``i8`` signed integers of that many bytes, ``s`` a NUL-terminated
string; everything little-endian. States and outcomes are one-byte codes from version 2 on,
names (strings) in version 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Layout = Sequence[tuple[str, str]]

STATE_CODE = {"waiting": 1, "delayed": 2, "active": 3, "completed": 4, "dead": 5, "cancelled": 6}
OUTCOME_CODE = {
    "": 0,
    "running": 1,
    "completed": 2,
    "retry": 3,
    "dead": 4,
    "expired": 5,
    "returned": 6,
}
FLAG_STUB = 1
VERSION = 3

_OPTIONS: Layout = (
    ("attempt", "H"),
    ("max_attempts", "H"),
    ("priority", "h"),
)

V3: Layout = (
    ("version", "B"),
    ("flags", "B"),
    ("state", "B"),
    *_OPTIONS,
    ("lease_ms", "i6"),
    ("backoff_ms", "i6"),
    ("backoff_max_ms", "i6"),
    ("jitter_pm", "H"),
    ("keep_result_ms", "i6"),
    ("keep_dead_ms", "i6"),
    ("token", "s"),
    ("outcome", "B"),
    ("deadline_ms", "i6"),
    ("worker", "s"),
    ("created_ms", "i6"),
    ("ready_ms", "i6"),
    ("leased_ms", "i6"),
    ("started_ms", "i6"),
    ("finished_ms", "i6"),
    ("payload_bytes", "i4"),
)
"""``<BBBHHhi6i6i6Hi6i6sBi6si6i6i6i6i6i4`` (JOB_FORMAT)."""

STUB: Layout = (
    ("version", "B"),
    ("flags", "B"),
    ("state", "B"),
    ("outcome", "B"),
    ("attempt", "H"),
    ("max_attempts", "H"),
    ("token", "s"),
    ("created_ms", "i6"),
    ("ready_ms", "i6"),
    ("finished_ms", "i6"),
)
"""``<BBBBHHsi6i6i6`` (STUB_FORMAT)."""

V2: Layout = (
    ("version", "B"),
    ("state", "B"),
    *_OPTIONS,
    ("lease_ms", "i6"),
    ("backoff_ms", "i6"),
    ("backoff_max_ms", "i6"),
    ("jitter_pm", "H"),
    ("keep_result_ms", "i6"),
    ("keep_dead_ms", "i6"),
    ("token", "s"),
    ("outcome", "B"),
    ("deadline_ms", "i6"),
    ("worker", "s"),
    ("created_ms", "i6"),
    ("ready_ms", "i6"),
    ("leased_ms", "i6"),
    ("finished_ms", "i6"),
)
"""``<BBHHhi6i6i6Hi6i6sBi6si6i6i6i6`` (V2_FORMAT): no started_ms, no payload_bytes."""

V1: Layout = (
    ("version", "B"),
    ("state", "s"),
    *_OPTIONS,
    ("lease_ms", "i8"),
    ("backoff_ms", "i8"),
    ("backoff_max_ms", "i8"),
    ("jitter_pm", "H"),
    ("keep_result_ms", "i8"),
    ("keep_dead_ms", "i8"),
    ("token", "s"),
    ("outcome", "s"),
    ("deadline_ms", "i8"),
    ("worker", "s"),
    ("created_ms", "i8"),
    ("ready_ms", "i8"),
    ("leased_ms", "i8"),
    ("finished_ms", "i8"),
)
"""``<BsHHhi8i8i8Hi8i8ssi8si8i8i8i8`` (V1_FORMAT): states and outcomes as names."""

LAYOUTS: dict[int, Layout] = {1: V1, 2: V2, 3: V3}

_SIZES = {"B": (1, False), "H": (2, False), "h": (2, True), "i4": (4, True), "i6": (6, True)}
_SIZES["i8"] = (8, True)


def pack(layout: Layout, values: Mapping[str, Any]) -> bytes:
    """The bytes of ``values`` in ``layout`` (what Lua's ``struct.pack`` writes)."""
    out = bytearray()
    for name, code in layout:
        value = values[name]
        if code == "s":
            data = value.encode() if isinstance(value, str) else bytes(value)
            assert b"\x00" not in data, f"{name} holds a NUL"
            out += data + b"\x00"
        else:
            size, signed = _SIZES[code]
            out += int(value).to_bytes(size, "little", signed=signed)
    return bytes(out)


def unpack(layout: Layout, raw: bytes) -> dict[str, Any]:
    """The fields of a record in ``layout``; ValueError when it is too short or too long."""
    values: dict[str, Any] = {}
    at = 0
    for name, code in layout:
        if code == "s":
            end = raw.index(b"\x00", at)
            values[name] = raw[at:end].decode()
            at = end + 1
        else:
            size, signed = _SIZES[code]
            if at + size > len(raw):
                raise ValueError("record too short")
            values[name] = int.from_bytes(raw[at : at + size], "little", signed=signed)
            at += size
    if at != len(raw):
        raise ValueError("record too long")
    return values


def encode(fields: Mapping[str, Any], version: int = VERSION) -> bytes:
    """A job record (``fields``: every name of JOB_FIELDS, state and outcome as names) in
    ``version`` 1, 2 or 3. Versions 1 and 2 cannot hold started_ms and payload_bytes."""
    values = dict(fields)
    values["version"] = version
    values["flags"] = 0
    if version >= 2:
        values["state"] = STATE_CODE[str(fields["state"])]
        values["outcome"] = OUTCOME_CODE[str(fields["outcome"])]
    else:
        values["state"] = str(fields["state"])
        values["outcome"] = str(fields["outcome"])
    return pack(LAYOUTS[version], values)


def encode_stub(fields: Mapping[str, Any]) -> bytes:
    """The stub of a finished job (lib/job.lua stub_encode)."""
    values = dict(fields)
    values.update(
        version=VERSION,
        flags=FLAG_STUB,
        state=STATE_CODE[str(fields["state"])],
        outcome=OUTCOME_CODE[str(fields["outcome"])],
    )
    return pack(STUB, values)


def decode(raw: bytes) -> dict[str, Any]:
    """The fields of a record of version 1, 2 or 3 (no stub), states and outcomes as names."""
    version = raw[0]
    values = unpack(LAYOUTS[version], raw)
    if version >= 2:
        states = {code: name for name, code in STATE_CODE.items()}
        outcomes = {code: name for name, code in OUTCOME_CODE.items()}
        values["state"] = states[values["state"]]
        values["outcome"] = outcomes[values["outcome"]]
    return values
