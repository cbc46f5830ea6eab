"""The payload codec (scheduler._codec): msgpack only, strict on decode, capped in size.

Whatever ``encode`` accepts, ``decode`` must accept too: a payload that no worker can decode is a
poison job, so it has to be refused before anything is sent.
"""

from __future__ import annotations

import contextlib
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler._codec import DEFAULT_MAX_PAYLOAD_BYTES, decode, encode
from scheduler.errors import PayloadError, ValidationError

ROUND_TRIP_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**64 - 1,
    -(2**63),
    1.5,
    float("inf"),
    "",
    "héllo wörld ✓",
    b"",
    b"\x00\xff raw bytes",
    [],
    {},
    [1, "two", b"three", None, [4.0, {"five": 5}]],
    {"nested": {"list": [1, 2, {"deep": b"bytes"}]}, "empty": {}},
    {b"bytes-key": 1, "str-key": 2},
    msgpack.Timestamp(1_700_000_000, 123),
]

plain_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(max_size=8) | st.binary(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)


def ext_bytes(code: int, data: bytes = b"x") -> bytes:
    """The msgpack bytes of an ext value of type ``code`` (-128..127), crafted by hand: msgpack's
    own ``ExtType`` only takes 0..127, and negative codes are the reserved ones."""
    fixext_markers = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}
    type_byte = code.to_bytes(1, "big", signed=True)
    if len(data) in fixext_markers:
        return bytes([fixext_markers[len(data)]]) + type_byte + data
    return bytes([0xC7, len(data)]) + type_byte + data  # ext 8


def nested_arrays(depth: int) -> bytes:
    """``depth`` nested one-element arrays around a nil: ``[[[...[nil]...]]]``."""
    return b"\x91" * depth + b"\xc0"


@pytest.mark.parametrize("value", ROUND_TRIP_VALUES, ids=repr)
def test_plain_values_round_trip(value: Any) -> None:
    assert decode(encode(value)) == value


def test_tuples_come_back_as_lists() -> None:
    assert decode(encode((1, (2, 3)))) == [1, [2, 3]]


@given(plain_values)
@settings(max_examples=150, deadline=None)
def test_any_plain_value_round_trips(value: Any) -> None:
    assert decode(encode(value)) == value


@pytest.mark.parametrize(
    "value",
    [object(), {1, 2}, frozenset(), [object()], {"k": {3}}, 2**64, -(2**63) - 1, "\ud800"],
    ids=repr,
)
def test_unencodable_values_are_refused(value: Any) -> None:
    with pytest.raises(PayloadError):
        encode(value)


def test_payload_error_is_a_validation_error() -> None:
    assert issubclass(PayloadError, ValidationError)


def test_encode_refuses_nesting_beyond_the_packer_limit() -> None:
    value: list[Any] = []
    for _ in range(2000):
        value = [value]
    with pytest.raises(PayloadError):
        encode(value)


@pytest.mark.parametrize(
    "value",
    [{1: "int key"}, {True: "bool key"}, {None: "nil key"}, {(1, 2): "array key"}, {1.5: "x"}],
    ids=repr,
)
def test_encode_refuses_map_keys_that_decode_would_refuse(value: Any) -> None:
    """decode() uses strict_map_key, so such a payload could never be decoded by a worker."""
    with pytest.raises(PayloadError):
        encode(value)


def test_encode_refuses_ext_types_that_decode_would_refuse() -> None:
    with pytest.raises(PayloadError):
        encode({"ext": msgpack.ExtType(5, b"data")})


def test_encode_size_cap_is_inclusive() -> None:
    exact = encode(b"x" * 10)
    assert encode(b"x" * 10, max_bytes=len(exact)) == exact
    with pytest.raises(PayloadError, match="over the limit"):
        encode(b"x" * 11, max_bytes=len(exact))


def test_encode_error_names_what_was_encoded() -> None:
    with pytest.raises(PayloadError, match=r"^result"):
        encode(object(), what="result")


def test_default_cap_is_one_mebibyte() -> None:
    assert DEFAULT_MAX_PAYLOAD_BYTES == 1024 * 1024
    encode(b"x" * (DEFAULT_MAX_PAYLOAD_BYTES - 16))
    with pytest.raises(PayloadError):
        encode(b"x" * DEFAULT_MAX_PAYLOAD_BYTES)


def test_decode_size_cap_is_checked_before_parsing() -> None:
    data = encode("x" * 100)
    assert decode(data, max_bytes=len(data)) == "x" * 100
    with pytest.raises(PayloadError, match="over the limit"):
        decode(data, max_bytes=len(data) - 1)
    with pytest.raises(PayloadError, match="over the limit"):
        decode(b"\xc1" * 101, max_bytes=100)  # refused on size even though it is not msgpack


@pytest.mark.parametrize("code", [0, 1, 5, 127, -2, -128])
@pytest.mark.parametrize("data", [b"x", b"abc", b"\x00" * 8], ids=["fixext1", "ext8", "fixext8"])
def test_decode_refuses_ext_types(code: int, data: bytes) -> None:
    with pytest.raises(PayloadError):
        decode(ext_bytes(code, data))


def test_decode_refuses_ext_types_nested_in_containers() -> None:
    data: bytes = msgpack.packb({"a": [1, msgpack.ExtType(9, b"zz")]})
    with pytest.raises(PayloadError):
        decode(data)


def test_decode_accepts_msgpack_timestamps() -> None:
    assert decode(ext_bytes(-1, b"\x00\x00\x00\x01")) == msgpack.Timestamp(1, 0)


def test_decode_refuses_invalid_utf8_strings() -> None:
    # fixstr of length 2 holding bytes that are not UTF-8: raw=False must refuse it.
    with pytest.raises(PayloadError):
        decode(b"\xa2\xff\xfe")


def test_decode_refuses_non_string_map_keys() -> None:
    with pytest.raises(PayloadError):
        decode(b"\x81\x01\xa1a")  # {1: "a"}


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc1", b"\x92\x01", b"\xc0\xc0", b"\xa5ab", b"\xdb\xff\xff\xff\xff"],
    ids=repr,
)
def test_decode_refuses_malformed_input(data: bytes) -> None:
    with pytest.raises(PayloadError):
        decode(data)


@pytest.mark.parametrize("depth", [2000, 200_000])
def test_decode_refuses_deep_nesting_without_crashing(depth: int) -> None:
    with pytest.raises(PayloadError):
        decode(nested_arrays(depth))


def test_decode_accepts_moderate_nesting() -> None:
    value = decode(nested_arrays(100))
    for _ in range(100):
        assert isinstance(value, list) and len(value) == 1
        value = value[0]
    assert value is None


@given(st.binary(max_size=256))
@settings(max_examples=300, deadline=None)
def test_decode_of_arbitrary_bytes_returns_a_value_or_raises_payload_error(data: bytes) -> None:
    with contextlib.suppress(PayloadError):
        decode(data)
