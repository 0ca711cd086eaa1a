"""The wire codec, JSON and MessagePack: kasagi._core.encode and decode.

Our bytes are checked against independent implementations (Python's json, the msgpack
package) in both directions, and every way a frame can be refused is exercised.
"""

from __future__ import annotations

import json
import struct

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kasagi import _core

try:
    from .strategies import INT64_MAX, SETTINGS, UINT64_MAX, keys, patches, tagged
except ImportError:  # tests/unit is not a package
    from strategies import INT64_MAX, SETTINGS, UINT64_MAX, keys, patches, tagged

FORMATS = ["json", "msgpack"]
TYPES = [
    "JOIN_ROOM", "LEAVE_ROOM", "STATE_UPDATE", "RESYNC", "PING",
    "FULL_STATE", "DELTA_UPDATE", "PLAYER_JOINED", "PLAYER_LEFT", "ACK", "PONG", "ERROR",
    "ROOM_EVENT",
]  # fmt: skip
UINT_KEYS = ["version", "baseVersion", "tick", "requestId", "timestamp"]
ROOM = "room-1"

room_ids = st.text(alphabet="abcXYZ019_.:-", min_size=1, max_size=128)
uints = st.integers(0, UINT64_MAX)


@st.composite
def messages(draw) -> dict:
    """A valid message dict, each optional key present or not."""
    m = {"type": draw(st.sampled_from(TYPES))}
    if m["type"] in ("JOIN_ROOM", "LEAVE_ROOM", "STATE_UPDATE", "RESYNC") or draw(st.booleans()):
        m["roomId"] = draw(room_ids)
    if m["type"] == "STATE_UPDATE" or draw(st.booleans()):
        m["payload"] = draw(patches)
    for key in UINT_KEYS:
        if draw(st.booleans()):
            m[key] = draw(uints)
    for key in ("epoch", "path"):
        if draw(st.booleans()):
            m[key] = draw(st.text(max_size=12))
    return m


def pack(obj) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def frame(fmt: str, obj) -> bytes:
    """Encodes `obj` with the reference implementation of `fmt`."""
    return json.dumps(obj).encode() if fmt == "json" else pack(obj)


def decode_error(fmt: str, data) -> _core.DecodeError:
    with pytest.raises(_core.DecodeError) as info:
        _core.decode(fmt, data)
    return info.value


# ---------------------------------------------------------------- round trips


@SETTINGS
@given(st.sampled_from(FORMATS), messages())
def test_round_trip(fmt, m):
    assert tagged(_core.decode(fmt, _core.encode(fmt, m))) == tagged(m)


@SETTINGS
@given(messages())
def test_json_agrees_with_python_json(m):
    assert tagged(json.loads(_core.encode("json", m))) == tagged(m)
    assert tagged(_core.decode("json", json.dumps(m))) == tagged(m)
    assert tagged(_core.decode("json", json.dumps(m).encode())) == tagged(m)


@SETTINGS
@given(messages())
def test_msgpack_agrees_with_the_msgpack_package(m):
    assert tagged(msgpack.unpackb(_core.encode("msgpack", m))) == tagged(m)
    assert tagged(_core.decode("msgpack", pack(m))) == tagged(m)


@SETTINGS
@given(st.sampled_from(FORMATS), st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_decode_error(fmt, data):
    try:
        _core.decode(fmt, data)
    except _core.DecodeError as e:
        assert e.code in ("BAD_MESSAGE", "UNKNOWN_TYPE")
        assert e.message


envelope_values = (
    st.none() | st.booleans() | st.integers(-(2**64), 2**64 - 1) | st.floats() | st.text(max_size=4)
)


@SETTINGS
@given(
    st.sampled_from(FORMATS),
    st.dictionaries(
        st.sampled_from(["type", "roomId", "payload", "version", "requestId", "epoch", "x"]),
        envelope_values
        | st.sampled_from(TYPES)
        | st.dictionaries(keys, envelope_values, max_size=2),
        max_size=5,
    ),
)
def test_arbitrary_envelopes_decode_or_raise_decode_error(fmt, obj):
    try:
        data = frame(fmt, obj)
    except (OverflowError, ValueError):  # not representable in that format
        return
    try:
        _core.decode(fmt, data)
    except _core.DecodeError as e:
        assert e.code in ("BAD_MESSAGE", "UNKNOWN_TYPE")


# ---------------------------------------------------------------- numbers


@pytest.mark.parametrize("fmt", FORMATS)
def test_ints_stay_ints_and_floats_stay_floats(fmt):
    payload = {
        "i": 3,
        "f": 3.0,
        "neg": -1,
        "big": INT64_MAX,
        "small": -(2**63),
        "z": -0.0,
        "b": True,
    }
    m = {"type": "DELTA_UPDATE", "roomId": ROOM, "payload": payload, "version": 7}
    out = _core.decode(fmt, _core.encode(fmt, m))
    assert tagged(out) == tagged(m)
    ref = (
        json.loads(_core.encode(fmt, m)) if fmt == "json" else msgpack.unpackb(_core.encode(fmt, m))
    )
    assert tagged(ref) == tagged(m)


@pytest.mark.parametrize("fmt", FORMATS)
def test_floats_round_trip_exactly(fmt):
    # Boost.JSON 1.81's own float parsing is off by one bit on values such as this one.
    values = [
        90072.96587707785,
        0.1,
        1e300,
        5e-324,
        -2.2250738585072014e-308,
        1.7976931348623157e308,
    ]
    m = {"type": "PING", "payload": {"f": values}}
    assert _core.decode(fmt, _core.encode(fmt, m)) == m
    assert _core.decode(fmt, frame(fmt, m)) == m


def test_msgpack_float32_decodes_as_float():
    data = pack({"type": "PING", "payload": {"f": 0.5}})
    data = data.replace(b"\xcb" + struct.pack(">d", 0.5), b"\xca" + struct.pack(">f", 0.5))
    assert tagged(_core.decode("msgpack", data)["payload"]) == tagged({"f": 0.5})


@pytest.mark.parametrize("fmt", FORMATS)
def test_uint_fields_take_the_whole_uint64_range(fmt):
    m = {"type": "ACK", "requestId": UINT64_MAX, "version": 0}
    assert _core.decode(fmt, _core.encode(fmt, m)) == m
    assert _core.decode(fmt, frame(fmt, m)) == m


@pytest.mark.parametrize("fmt", FORMATS)
def test_payload_uint64_beyond_int64_is_refused(fmt):
    e = decode_error(fmt, frame(fmt, {"type": "PING", "requestId": 9, "payload": {"a": [2**63]}}))
    assert (e.code, e.message, e.request_id) == ("BAD_MESSAGE", "payload: integer out of range", 9)


@pytest.mark.parametrize(("fmt", "data"), [("json", b'{"type":"PING","payload":{"a":1e400}}'),
                                           ("msgpack", pack({"type": "PING", "payload": {"a": float("nan")}}))])  # fmt: skip
def test_non_finite_numbers_are_refused(fmt, data):
    assert decode_error(fmt, data).message == "payload: non-finite number"


# ---------------------------------------------------------------- envelope


@pytest.mark.parametrize("fmt", FORMATS)
def test_absent_keys_are_omitted(fmt):
    data = _core.encode(fmt, {"type": "PING", "roomId": None, "requestId": None, "timestamp": 5})
    ref = json.loads(data) if fmt == "json" else msgpack.unpackb(data)
    assert ref == {"type": "PING", "timestamp": 5}
    assert _core.decode(fmt, data) == {"type": "PING", "timestamp": 5}


def test_json_encoding_is_compact_with_wire_keys_in_order():
    m = {"path": "/p", "payload": {"a": 1}, "tick": 2, "epoch": "e", "roomId": "r", "type": "DELTA_UPDATE",
         "version": 3, "baseVersion": 2, "requestId": 4, "timestamp": 5}  # fmt: skip
    assert _core.encode("json", m) == (
        b'{"type":"DELTA_UPDATE","roomId":"r","payload":{"a":1},"version":3,"baseVersion":2,'
        b'"tick":2,"epoch":"e","requestId":4,"timestamp":5,"path":"/p"}'
    )


def test_json_strings_are_escaped():
    m = {"type": "ERROR", "epoch": 'q"\\\n\x01', "payload": {'k"': "é\t"}}
    data = _core.encode("json", m)
    assert json.loads(data) == m
    assert _core.decode("json", data) == m


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("t", TYPES)
def test_every_type_decodes(fmt, t):
    m = {"type": t, "roomId": ROOM, "payload": {}}
    assert _core.decode(fmt, frame(fmt, m)) == m


@pytest.mark.parametrize("fmt", FORMATS)
def test_server_messages_decode(fmt):
    full = {"type": "FULL_STATE", "roomId": ROOM, "version": 4, "tick": 9, "epoch": "e1",
            "payload": {"state": {"players": {"p1": {"x": 1.5}}}, "playerId": "p1", "sessionToken": "t"}}  # fmt: skip
    delta = {"type": "DELTA_UPDATE", "roomId": ROOM, "version": 5, "baseVersion": 4, "tick": 10,
             "epoch": "e1", "payload": {"players": {"p2": None, "p1": {"x": 2}}}}  # fmt: skip
    for m in (full, delta):
        assert tagged(_core.decode(fmt, _core.encode(fmt, m))) == tagged(m)


@pytest.mark.parametrize("fmt", FORMATS)
def test_unknown_envelope_keys_are_ignored(fmt):
    data = frame(fmt, {"type": "RESYNC", "roomId": ROOM, "extra": {"deep": [1, 2]}, "x": None})
    assert _core.decode(fmt, data) == {"type": "RESYNC", "roomId": ROOM}


def test_room_id_limits():
    assert (
        _core.decode("json", json.dumps({"type": "RESYNC", "roomId": "a" * 128}))["roomId"]
        == "a" * 128
    )
    assert (
        _core.decode("json", json.dumps({"type": "RESYNC", "roomId": "aZ0_.:-"}))["roomId"]
        == "aZ0_.:-"
    )


@pytest.mark.parametrize("data", [b'{"type":"PING"}', '{"type":"PING"}', bytearray(b'{"type":"PING"}'),
                                  memoryview(b'{"type":"PING"}')])  # fmt: skip
def test_decode_accepts_bytes_like_and_str(data):
    assert _core.decode("json", data) == {"type": "PING"}


def test_decode_refuses_other_data_types():
    with pytest.raises(TypeError):
        _core.decode("json", 12)


# ---------------------------------------------------------------- decode errors

MALFORMED = [
    ("json", b'{"type":', "frame is not valid JSON: "),
    ("json", b'{"type":"PING"} x', "frame is not valid JSON: "),
    ("json", b"", "frame is not valid JSON: "),
    ("json", b'{"type":"PING","payload":{"s":"\xff"}}', "frame is not valid JSON: "),
    ("msgpack", b"\xc1", "frame is not valid MessagePack: "),
    ("msgpack", b"", "frame is not valid MessagePack: truncated"),
    (
        "msgpack",
        pack({"type": "PING", "payload": {"a": "xyz"}})[:-2],
        "frame is not valid MessagePack: truncated",
    ),
    (
        "msgpack",
        b"\xdd\xff\xff\xff\xff",
        "frame is not valid MessagePack: ",
    ),  # array of 2**32-1, no body
    ("msgpack", b"\xdb\xff\xff\xff\xffab", "frame is not valid MessagePack: "),  # str of 2**32-1
    ("msgpack", pack({"type": "PING"}) + b"\x00", "frame is not valid MessagePack: trailing bytes"),
    ("json", b"[1,2]", "frame: must be a map"),
    ("json", b'"PING"', "frame: must be a map"),
    ("msgpack", pack([1, 2]), "frame: must be a map"),
    ("msgpack", pack(None), "frame: must be a map"),
]


@pytest.mark.parametrize(("fmt", "data", "message"), MALFORMED)
def test_malformed_frames(fmt, data, message):
    e = decode_error(fmt, data)
    assert e.code == "BAD_MESSAGE"
    assert e.message.startswith(message)
    assert (e.request_id, e.room_id) == (None, None)


# Frames that parse but are not valid messages: (frame without requestId/roomId, code,
# message). Each is also tried with requestId and roomId added, which must be echoed.
INVALID = [
    ({}, "BAD_MESSAGE", "type: missing"),
    ({"type": 5}, "BAD_MESSAGE", "type: must be a string"),
    ({"type": None}, "BAD_MESSAGE", "type: must be a string"),
    ({"type": "join_room"}, "UNKNOWN_TYPE", 'type: unknown message type "join_room"'),
    ({"type": "NOPE"}, "UNKNOWN_TYPE", 'type: unknown message type "NOPE"'),
    ({"type": "JOIN_ROOM"}, "BAD_MESSAGE", "roomId: required for JOIN_ROOM"),
    ({"type": "LEAVE_ROOM"}, "BAD_MESSAGE", "roomId: required for LEAVE_ROOM"),
    ({"type": "STATE_UPDATE", "payload": {}}, "BAD_MESSAGE", "roomId: required for STATE_UPDATE"),
    ({"type": "RESYNC"}, "BAD_MESSAGE", "roomId: required for RESYNC"),
    ({"type": "PING", "payload": [1]}, "BAD_MESSAGE", "payload: must be a map"),
    ({"type": "PING", "payload": "x"}, "BAD_MESSAGE", "payload: must be a map"),
    ({"type": "PING", "payload": None}, "BAD_MESSAGE", "payload: must be a map"),
    ({"type": "PING", "epoch": 1}, "BAD_MESSAGE", "epoch: must be a string"),
    ({"type": "PING", "path": ["a"]}, "BAD_MESSAGE", "path: must be a string"),
    ({"type": "PING", "payload": {"a": {"b": 2**63}}}, "BAD_MESSAGE", "payload: integer out of range"),
] + [
    ({"type": "PING", key: bad}, "BAD_MESSAGE", f"{key}: must be a non-negative integer")
    for key in ["version", "baseVersion", "tick", "timestamp"]
    for bad in [-1, 3.0, "3", True, None, [1]]
]  # fmt: skip


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("obj", "code", "message"), INVALID)
def test_invalid_messages(fmt, obj, code, message):
    e = decode_error(fmt, frame(fmt, obj))
    assert (e.code, e.message, e.request_id, e.room_id) == (code, message, None, None)
    assert isinstance(e, ValueError)
    assert str(e) == message


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("obj", "code", "message"), INVALID)
def test_errors_echo_request_id_and_room_id(fmt, obj, code, message):
    if "roomId: required" in message:
        obj = {**obj, "requestId": 42}
        room = None
    else:
        obj = {**obj, "requestId": 42, "roomId": ROOM}
        room = ROOM
    e = decode_error(fmt, frame(fmt, obj))
    assert (e.code, e.message, e.request_id, e.room_id) == (code, message, 42, room)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("room", ["", "a b", "a" * 129, "rüm", "a/b", 7, None])
def test_bad_room_ids(fmt, room):
    e = decode_error(fmt, frame(fmt, {"type": "RESYNC", "roomId": room, "requestId": 3}))
    expected = "roomId: must be a string" if not isinstance(room, str) else (
        "roomId: must be 1..128 characters of [A-Za-z0-9_.:-]")  # fmt: skip
    assert (e.code, e.message, e.request_id, e.room_id) == ("BAD_MESSAGE", expected, 3, None)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("bad", [-1, 2.0, "1", 2**64 - 0.5])
def test_bad_request_id_is_reported_and_not_echoed(fmt, bad):
    e = decode_error(fmt, frame(fmt, {"type": "PING", "roomId": ROOM, "requestId": bad}))
    assert (e.message, e.request_id, e.room_id) == (
        "requestId: must be a non-negative integer",
        None,
        ROOM,
    )


def test_state_update_requires_a_payload():
    for fmt in FORMATS:
        e = decode_error(fmt, frame(fmt, {"type": "STATE_UPDATE", "roomId": ROOM, "requestId": 1}))
        assert (e.message, e.request_id, e.room_id) == (
            "payload: required for STATE_UPDATE",
            1,
            ROOM,
        )


def nested(depth: int) -> dict:
    """Returns a map nested `depth` levels deep, itself included."""
    v: dict = {}
    for _ in range(depth - 1):
        v = {"a": v}
    return v


@pytest.mark.parametrize("fmt", FORMATS)
def test_nesting_limits(fmt):
    ok = {"type": "PING", "requestId": 1, "payload": nested(32)}
    assert _core.decode(fmt, frame(fmt, ok)) == ok
    arrays = {"type": "PING", "payload": {"a": [[[[1]]]] * 2}}
    assert _core.decode(fmt, frame(fmt, arrays)) == arrays
    # A payload a little too deep is refused with requestId echoed...
    e = decode_error(fmt, frame(fmt, {"type": "PING", "requestId": 1, "payload": nested(33)}))
    assert (e.code, e.message, e.request_id) == (
        "BAD_MESSAGE",
        "payload: nested deeper than 32 levels",
        1,
    )
    # ...and a hostile one is stopped by the parser.
    deep = {"type": "PING", "requestId": 1, "payload": nested(90)}
    e = decode_error(fmt, json.dumps(deep).encode() if fmt == "json" else pack(deep))
    assert e.code == "BAD_MESSAGE"
    assert e.message.startswith("frame is nested too deeply")


def test_msgpack_bin_ext_and_non_string_keys_are_refused():
    cases = [
        ({"type": "PING", "payload": {"a": b"x"}}, "payload: bin values are not allowed"),
        (
            {"type": "PING", "payload": {"a": [msgpack.ExtType(1, b"x")]}},
            "payload: ext values are not allowed",
        ),
        ({"type": "PING", "payload": {1: "x"}}, "payload: map keys must be strings"),
        ({"type": b"PING"}, "type: bin values are not allowed"),
        ({"type": "PING", 1: 2}, "frame: map keys must be UTF-8 strings"),
        ({"type": "PING", b"roomId": "r"}, "frame: map keys must be UTF-8 strings"),
    ]
    for obj, message in cases:
        e = decode_error("msgpack", pack({**obj, "requestId": 8, "roomId": ROOM}))
        assert (e.code, e.message, e.request_id, e.room_id) == ("BAD_MESSAGE", message, 8, ROOM)


def raw_map(*pairs: tuple[object, object]) -> bytes:
    """A MessagePack map with `pairs` in order, repeated keys included."""
    return bytes([0x80 | len(pairs)]) + b"".join(pack(k) + pack(v) for k, v in pairs)


def test_msgpack_frames_off_the_common_shape_decode_as_json_would():
    # The MessagePack decoder converts frames of envelope keys straight into a message;
    # anything else takes the generic path, which must still decide as it always has.
    update = [("type", "STATE_UPDATE"), ("roomId", ROOM), ("payload", {"x": 1})]
    assert _core.decode("msgpack", raw_map(*update, ("payload", {"y": 2}))) == {
        "type": "STATE_UPDATE", "roomId": ROOM, "payload": {"y": 2}}  # the last one wins
    assert _core.decode("msgpack", raw_map(*update, ("extra", [1]))) == {
        "type": "STATE_UPDATE", "roomId": ROOM, "payload": {"x": 1}}
    e = decode_error("msgpack", raw_map(*update, ("requestId", 3), ("extra", b"x")))
    assert (e.message, e.request_id) == ("extra: bin values are not allowed", 3)
    e = decode_error("msgpack", raw_map(*update, ("requestId", 3), ("version", -1)))
    assert (e.message, e.request_id) == ("version: must be a non-negative integer", 3)
    e = decode_error("msgpack", raw_map(("type", "STATE_UPDATE"), ("roomId", ROOM)))
    assert e.message == "payload: required for STATE_UPDATE"


def test_msgpack_invalid_utf8_is_refused():
    good = pack({"type": "PING", "payload": {"s": "ab"}})
    for bad in (
        b"\xff\xfe",
        b"\xc0\xaf",
        b"\xed\xa0",
    ):  # invalid byte, overlong '/', surrogate half
        e = decode_error("msgpack", good.replace(b"\xa2ab", b"\xa2" + bad))
        assert e.message == "payload: strings must be valid UTF-8"


def test_decode_error_is_a_value_error_with_attributes():
    assert issubclass(_core.DecodeError, ValueError)
    e = decode_error("json", b'{"type":"X","requestId":5,"roomId":"r"}')
    assert (e.code, e.message, e.request_id, e.room_id) == (
        "UNKNOWN_TYPE",
        'type: unknown message type "X"',
        5,
        "r",
    )


def test_long_unknown_type_is_quoted_truncated():
    e = decode_error("json", json.dumps({"type": "é" * 100}))
    assert e.message == 'type: unknown message type "' + "é" * 32 + '"'


# ---------------------------------------------------------------- encode errors


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"type": "NOPE"}, "type: unknown message type 'NOPE'"),
        ({}, "type: missing"),
        ({"type": 1}, "type: must be a str"),
        ({"type": "PING", "bogus": 1}, "unknown message key 'bogus'"),
        ({"type": "PING", "version": -1}, "version: must be an int in 0..2**64-1"),
        ({"type": "PING", "version": 1.0}, "version: must be an int in 0..2**64-1"),
        ({"type": "PING", "version": True}, "version: must be an int in 0..2**64-1"),
        ({"type": "PING", "version": 2**64}, "version: must be an int in 0..2**64-1"),
        ({"type": "PING", "payload": [1]}, "payload: must be a dict"),
        ({"type": "PING", "roomId": 1}, "roomId: must be a str"),
        ({"type": "PING", "epoch": 1}, "epoch: must be a str"),
    ],
)
def test_encode_refuses_bad_messages(message, error):
    for fmt in FORMATS:
        with pytest.raises(ValueError) as info:
            _core.encode(fmt, message)
        assert str(info.value) == error


def test_encode_refuses_bad_formats_and_payload_values():
    with pytest.raises(ValueError, match="format"):
        _core.encode("xml", {"type": "PING"})
    with pytest.raises(ValueError, match="format"):
        _core.decode("xml", b"{}")
    with pytest.raises(TypeError, match="bytes"):
        _core.encode("msgpack", {"type": "PING", "payload": {"a": b"x"}})
    with pytest.raises(ValueError, match="int64"):
        _core.encode("msgpack", {"type": "PING", "payload": {"a": 2**63}})
    with pytest.raises(TypeError):
        _core.encode("json", [("type", "PING")])
