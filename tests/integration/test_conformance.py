"""Conformance of every message type of PROTOCOL.md, in both encodings, over real sockets."""

from __future__ import annotations

import json
import urllib.request

import msgpack
import pytest

from wire import Wire, raw_upgrade


def test_handshake_picks_the_offered_subprotocol(make_server, encoding):
    server = make_server()
    w = Wire(server.url, encoding)
    assert w.ws.subprotocol == f"kasagi.v1.{encoding}"
    full = w.join("hs")
    assert full["type"] == "FULL_STATE"


def test_no_subprotocol_means_json(make_server):
    server = make_server()
    w = Wire(server.url, "json", offer=False)
    assert w.ws.subprotocol is None
    assert w.join("plain")["payload"]["playerId"]


def test_unknown_subprotocol_list_is_refused_with_400(make_server):
    server = make_server()
    s, head = raw_upgrade(server.port, protocols="graphql-ws, chat")
    assert head.startswith(b"HTTP/1.1 400"), head
    s.close()
    s, head = raw_upgrade(server.port, protocols="chat, kasagi.v1.msgpack")
    assert head.startswith(b"HTTP/1.1 101"), head
    assert b"kasagi.v1.msgpack" in head
    s.close()


def test_healthz_and_metrics(make_server, connect):
    server = make_server()
    w = connect(server)
    w.join("m")
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz") as r:
        assert r.status == 200
        body = json.loads(r.read())
    assert body["status"] == "ok" and body["connections"] == 1 and body["rooms"] == 1
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics") as r:
        text = r.read().decode()
        assert r.headers["Content-Type"].startswith("text/plain")
    assert 'kasagi_messages_in_total{type="JOIN_ROOM"} 1' in text
    assert "kasagi_connections 1" in text
    assert "kasagi_tick_duration_seconds_bucket" in text


def test_join_full_state_and_player_joined(make_server, connect):
    server = make_server()
    a, b = connect(server), connect(server)
    fa = a.join("room-1", playerName="Ann", color="#f00")
    assert fa["roomId"] == "room-1"
    pid_a = fa["payload"]["playerId"]
    assert fa["payload"]["sessionToken"]
    assert fa["payload"]["state"]["players"][pid_a] == {"playerName": "Ann", "color": "#f00"}
    assert isinstance(fa["version"], int) and isinstance(fa["tick"], int) and fa["epoch"]

    fb = b.join("room-1", playerName="Bob")
    pid_b = fb["payload"]["playerId"]
    assert fb["payload"]["state"]["players"][pid_a]["playerName"] == "Ann"
    assert fb["payload"]["state"]["players"][pid_b] == {"playerName": "Bob"}

    # A sees B's entry arrive through a delta that continues A's version chain.
    delta = a.expect("DELTA_UPDATE")
    assert delta["baseVersion"] == fa["version"]
    assert delta["version"] == fb["version"]
    assert delta["payload"] == {"players": {pid_b: {"playerName": "Bob"}}}
    joined = a.expect("PLAYER_JOINED")
    assert joined["payload"] == {"playerId": pid_b, "playerName": "Bob"}


def test_state_update_delta_ack_and_types(make_server, connect):
    server = make_server(tick_rate=20)
    a, b = connect(server), connect(server)
    fa = a.join("r")
    pid = fa["payload"]["playerId"]
    fb = b.join("r")
    a.expect("DELTA_UPDATE")
    a.send({"type": "STATE_UPDATE", "roomId": "r", "requestId": 41,
            "payload": {"x": 3, "y": 2.5, "tags": ["a", 1], "nested": {"hp": 100}}})
    ack = a.expect("ACK")
    assert ack["requestId"] == 41 and ack["roomId"] == "r"
    da = a.expect("DELTA_UPDATE")
    db = b.expect("DELTA_UPDATE")
    assert da == db  # the writer gets the same delta as everyone
    assert ack["version"] <= da["version"]
    assert db["baseVersion"] == fb["version"]
    patch = db["payload"]["players"][pid]
    assert patch == {"x": 3, "y": 2.5, "tags": ["a", 1], "nested": {"hp": 100}}
    assert type(patch["x"]) is int and type(patch["y"]) is float


def test_changes_within_a_tick_are_coalesced(make_server, connect):
    server = make_server(tick_rate=2)  # 500 ms ticks: the three writes land in one
    a, b = connect(server), connect(server)
    pid = a.join("c")["payload"]["playerId"]
    b.join("c")
    a.expect("DELTA_UPDATE")
    for x in (1, 2, 3):
        a.send({"type": "STATE_UPDATE", "roomId": "c", "payload": {"x": x, "keep": "k"}})
    a.send({"type": "STATE_UPDATE", "roomId": "c", "payload": {"gone": True}})
    a.send({"type": "STATE_UPDATE", "roomId": "c", "payload": {"gone": None}})
    delta = b.expect("DELTA_UPDATE", timeout=3)
    assert delta["payload"] == {"players": {pid: {"x": 3, "keep": "k"}}}
    assert delta["version"] - delta["baseVersion"] == 5  # five changes, one delta


def test_tick_rate_zero_sends_at_once(make_server, connect):
    server = make_server(tick_rate=0)
    a = connect(server)
    full = a.join("z")
    for x in range(3):
        a.send({"type": "STATE_UPDATE", "roomId": "z", "payload": {"x": x}})
    versions = [a.expect("DELTA_UPDATE")["version"] for _ in range(3)]
    assert versions == [full["version"] + 1, full["version"] + 2, full["version"] + 3]


def test_leave_room(make_server, connect):
    server = make_server()
    a, b = connect(server), connect(server)
    a.join("l")
    pid_b = b.join("l")["payload"]["playerId"]
    a.expect("PLAYER_JOINED")
    b.send({"type": "LEAVE_ROOM", "roomId": "l", "requestId": 5})
    assert b.expect("ACK")["requestId"] == 5
    left = a.expect("PLAYER_LEFT")
    assert left["payload"] == {"playerId": pid_b, "reason": "left"}
    delta = a.expect("DELTA_UPDATE", where=lambda m: pid_b in m["payload"].get("players", {}))
    assert delta["payload"]["players"][pid_b] is None
    b.send({"type": "STATE_UPDATE", "roomId": "l", "payload": {"x": 1}, "requestId": 6})
    err = b.expect("ERROR")
    assert err["payload"]["code"] == "NOT_IN_ROOM" and err["requestId"] == 6


def test_resync_gives_a_fresh_full_state(make_server, connect):
    server = make_server()
    a = connect(server)
    a.join("rs", n=1)
    a.send({"type": "STATE_UPDATE", "roomId": "rs", "payload": {"n": 2}})
    a.send({"type": "RESYNC", "roomId": "rs"})
    full = a.expect("FULL_STATE")
    pid = full["payload"]["playerId"]
    assert full["payload"]["state"]["players"][pid]["n"] == 2
    # The next delta continues from the resync's version.
    a.send({"type": "STATE_UPDATE", "roomId": "rs", "payload": {"n": 3}})
    assert a.expect("DELTA_UPDATE")["baseVersion"] == full["version"]


def test_ping_pong(make_server, connect):
    server = make_server()
    a = connect(server)
    a.send({"type": "PING", "timestamp": 1234567, "requestId": 9})
    pong = a.expect("PONG")
    assert pong["timestamp"] == 1234567
    assert isinstance(pong["payload"]["serverTime"], int)


def test_a_connection_may_be_in_several_rooms(make_server, connect):
    server = make_server()
    a, b = connect(server), connect(server)
    pa1 = a.join("one")["payload"]["playerId"]
    a.join("two")
    b.join("two")
    a.send({"type": "STATE_UPDATE", "roomId": "one", "payload": {"where": 1}})
    a.send({"type": "STATE_UPDATE", "roomId": "two", "payload": {"where": 2}})
    d = b.expect("DELTA_UPDATE", where=lambda m: "where" in json.dumps(m["payload"]))
    assert d["roomId"] == "two"
    assert server.room_state("one")["state"]["players"][pa1]["where"] == 1


def test_optimistic_version_check_conflict(make_server, connect):
    server = make_server(tick_rate=0, writable_paths=["/players/$self", "/board"])
    a, b = connect(server), connect(server)
    fa = a.join("opt")
    b.join("opt")
    base = fa["version"] + 1  # after b's join
    a.expect("DELTA_UPDATE", where=lambda m: m["version"] == base)
    # A writes /board/cell at `base`; B, also based on `base`, writes the same cell: CONFLICT.
    a.send({"type": "STATE_UPDATE", "roomId": "opt", "path": "/board", "version": base,
            "payload": {"cell": "A"}, "requestId": 1})
    assert a.expect("ACK")["requestId"] == 1
    b.send({"type": "STATE_UPDATE", "roomId": "opt", "path": "/board", "version": base,
            "payload": {"cell": "B"}, "requestId": 2})
    err = b.expect("ERROR")
    assert err["payload"]["code"] == "CONFLICT" and err["requestId"] == 2
    # A different field based on the same version is fine; so is the writer's own field.
    b.send({"type": "STATE_UPDATE", "roomId": "opt", "path": "/board", "version": base,
            "payload": {"other": "B"}, "requestId": 3})
    assert b.expect("ACK")["requestId"] == 3
    a.send({"type": "STATE_UPDATE", "roomId": "opt", "path": "/board", "version": base,
            "payload": {"cell": "A2"}, "requestId": 4})
    assert a.expect("ACK")["requestId"] == 4
    assert server.room_state("opt")["state"]["board"] == {"cell": "A2", "other": "B"}
    # Without a version, last writer wins.
    b.send({"type": "STATE_UPDATE", "roomId": "opt", "path": "/board", "payload": {"cell": "B"},
            "requestId": 5})
    assert b.expect("ACK")["requestId"] == 5
    assert server.room_state("opt")["state"]["board"]["cell"] == "B"


def test_msgpack_keeps_integers_and_floats_apart(make_server):
    server = make_server(tick_rate=0)
    w = Wire(server.url, "msgpack")
    pid = w.join("mp")["payload"]["playerId"]
    w.send_raw(msgpack.packb({"type": "STATE_UPDATE", "roomId": "mp",
                              "payload": {"i": 2, "f": 2.0, "big": 2**62, "neg": -7}}))
    frame = w.ws.recv(timeout=5)
    assert isinstance(frame, bytes)
    delta = msgpack.unpackb(frame)
    assert delta["type"] == "DELTA_UPDATE"
    p = delta["payload"]["players"][pid]
    assert (type(p["i"]), type(p["f"]), p["big"], p["neg"]) == (int, float, 2**62, -7)
