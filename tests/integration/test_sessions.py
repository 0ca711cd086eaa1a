"""Session lifecycle: resume within grace, expiry after it, idle timeout, slow consumers,
graceful drain."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from kasagi.testing import metric_value
from wire import Wire, masked_frame, raw_upgrade

# Connections and rooms on several I/O threads: CI runs these under ThreadSanitizer too.
pytestmark = pytest.mark.tsan


def test_resume_within_grace_keeps_the_player(make_server, connect):
    server = make_server(session_grace=5)
    a, b = connect(server), connect(server)
    fa = a.join("g", name="A")
    pid, token = fa["payload"]["playerId"], fa["payload"]["sessionToken"]
    b.join("g")
    a.close()
    time.sleep(0.2)
    assert pid in server.room_state("g")["state"]["players"]  # kept for the grace period

    a2 = connect(server)
    again = a2.join("g", sessionToken=token)
    assert again["payload"]["playerId"] == pid
    assert again["payload"]["state"]["players"][pid] == {"name": "A"}
    # No PLAYER_LEFT / PLAYER_JOINED churn for the others.
    assert not [m for m in b.quiet(0.5) if m["type"] in ("PLAYER_LEFT", "PLAYER_JOINED")]


def test_resume_with_last_version_replays_missed_deltas(make_server, connect):
    server = make_server(session_grace=5, tick_rate=0)
    a, b = connect(server), connect(server)
    fa = a.join("h")
    token = fa["payload"]["sessionToken"]
    b.join("h")
    last = a.expect("DELTA_UPDATE")
    a.close()
    for x in range(3):
        b.send({"type": "STATE_UPDATE", "roomId": "h", "payload": {"x": x}, "requestId": x})
        b.expect("ACK")
    a2 = connect(server)
    a2.send({"type": "JOIN_ROOM", "roomId": "h", "requestId": 99, "epoch": last["epoch"],
             "payload": {"sessionToken": token, "lastVersion": last["version"]}})
    replay = []
    while (m := a2.recv())["type"] != "ACK":
        assert m["type"] == "DELTA_UPDATE", m
        replay.append(m)
    assert m["requestId"] == 99 and m["version"] == server.room_state("h")["version"]
    assert [d["baseVersion"] for d in replay] == [last["version"] + i for i in range(3)]
    assert replay[-1]["version"] == m["version"]


def test_resume_from_unknown_history_falls_back_to_full_state(make_server, connect):
    server = make_server(session_grace=5, tick_rate=0, delta_history=2)
    a, b = connect(server), connect(server)
    fa = a.join("hh")
    b.join("hh")
    a.close()
    for x in range(5):
        b.send({"type": "STATE_UPDATE", "roomId": "hh", "payload": {"x": x}})
    time.sleep(0.2)
    a2 = connect(server)
    full = a2.join("hh", sessionToken=fa["payload"]["sessionToken"], lastVersion=fa["version"])
    assert full["payload"]["playerId"] == fa["payload"]["playerId"]
    assert full["version"] == server.room_state("hh")["version"]


def test_delta_history_is_bounded_in_bytes(make_server, connect):
    # Each delta carries 1 KB: about 3 KB charged, so 12 KB keeps the last few only.
    server = make_server(session_grace=5, tick_rate=0, delta_history_bytes=12_000)
    a, b = connect(server), connect(server)
    fa = a.join("hb")
    token = fa["payload"]["sessionToken"]
    b.join("hb")
    last = a.expect("DELTA_UPDATE")
    player = [a]  # its current connection

    def resume(missed: int) -> str:
        """The answer to a resume after ``missed`` updates: ACK (replayed) or FULL_STATE."""
        player[0].close()
        for x in range(missed):
            b.send({"type": "STATE_UPDATE", "roomId": "hb", "payload": {"x": f"{x}" * 1000},
                    "requestId": x})
            b.expect("ACK")
        player[0] = connect(server)
        player[0].send({"type": "JOIN_ROOM", "roomId": "hb", "epoch": last["epoch"],
                        "payload": {"sessionToken": token, "lastVersion": last["version"]}})
        while (m := player[0].recv())["type"] == "DELTA_UPDATE":
            pass
        return m["type"]

    assert resume(2) == "ACK"
    last = {"version": server.room_state("hb")["version"], "epoch": last["epoch"]}
    assert resume(10) == "FULL_STATE"


def test_player_expires_after_grace(make_server, connect):
    server = make_server(session_grace=0.5)
    a, b = connect(server), connect(server)
    fa = a.join("x")
    pid = fa["payload"]["playerId"]
    b.join("x")
    a.close()
    left = b.expect("PLAYER_LEFT", timeout=3)
    assert left["payload"] == {"playerId": pid, "reason": "timeout"}
    assert pid not in server.room_state("x")["state"]["players"]
    # The old token no longer resumes: a new player is created.
    a2 = connect(server)
    again = a2.join("x", sessionToken=fa["payload"]["sessionToken"])
    assert again["payload"]["playerId"] != pid


def test_resume_on_a_second_connection_takes_the_player_over(make_server, connect):
    server = make_server(session_grace=5, tick_rate=0)
    a = connect(server)
    fa = a.join("t")
    a2 = connect(server)
    again = a2.join("t", sessionToken=fa["payload"]["sessionToken"])
    assert again["payload"]["playerId"] == fa["payload"]["playerId"]
    a.send({"type": "STATE_UPDATE", "roomId": "t", "payload": {"x": 1}})
    assert a.expect("ERROR")["payload"]["code"] == "NOT_IN_ROOM"


def test_idle_connection_is_closed(make_server):
    server = make_server(idle_timeout=1.0, session_grace=5)
    # A hand-made client that never answers the server's pings.
    s, head = raw_upgrade(server.port)
    assert head.startswith(b"HTTP/1.1 101")
    s.settimeout(5)
    t0 = time.monotonic()
    data = b""
    try:
        while chunk := s.recv(4096):
            data += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    elapsed = time.monotonic() - t0
    assert elapsed < 4.5, "the server should have closed the silent connection"
    assert b"\x89" in data  # it was pinged first
    s.close()


def test_idle_timeout_puts_players_in_grace(make_server, connect):
    server = make_server(idle_timeout=1.0, session_grace=0.5)
    watcher = connect(server)
    watcher.join("idle")
    s, head = raw_upgrade(server.port)
    s.sendall(masked_frame(b'{"type":"JOIN_ROOM","roomId":"idle"}'))
    left = watcher.expect("PLAYER_LEFT", timeout=5)
    assert left["payload"]["reason"] == "timeout"
    s.close()


def metric(server, name: str) -> float:
    return metric_value(server.metrics(), f"kasagi_{name}_total")


@pytest.mark.skipif(os.environ.get("KASAGI_TSAN") == "1",
                    reason="under ThreadSanitizer the Python readers cannot take 16 MB/s")
def test_slow_consumer_is_resynced_then_disconnected(make_server, connect):
    server = make_server(tick_rate=0, send_queue_max_bytes=1024 * 1024,
                         send_queue_max_messages=1024, slow_consumer_window=30,
                         rate_limit=100000, rate_burst=100000, read_bytes_per_second=0)
    writer, good = connect(server), connect(server)
    writer.join("slow")
    good.join("slow")
    # Both well-behaved members read all the time, on threads of their own.
    seen: dict[str, list[dict]] = {"writer": [], "good": []}
    stop = threading.Event()

    def drain(name: str, w: Wire) -> None:
        while not stop.is_set():
            try:
                m = w.recv(0.2)
            except TimeoutError:
                continue
            if m["type"] == "DELTA_UPDATE":
                seen[name].append(m)

    readers = [threading.Thread(target=drain, args=(n, w)) for n, w in
               (("writer", writer), ("good", good))]
    for t in readers:
        t.start()
    # A client that joins and then never reads: its kernel buffers fill, then its queue.
    s, head = raw_upgrade(server.port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(masked_frame(b'{"type":"JOIN_ROOM","roomId":"slow"}'))
    time.sleep(0.2)
    updates = 1500
    start = server.room_state("slow")["version"]
    final = start + updates  # each update is a new version
    window = 16  # updates the well-behaved readers may lag: 256 KB, far below their queue

    def readers_lag(i: int) -> bool:
        return any(not seen[n] or seen[n][-1]["version"] < start + i - window
                   for n in ("writer", "good"))

    try:
        for i in range(updates):  # every delta carries a fresh 16 KB value
            # Paced by the readers, so only the stuck client falls behind however slow
            # this machine is; the stuck one's queue fills at whatever pace that gives.
            paced_until = time.monotonic() + 30
            while i >= window and readers_lag(i) and time.monotonic() < paced_until:
                time.sleep(0.001)
            writer.send({"type": "STATE_UPDATE", "roomId": "slow",
                         "payload": {"b": f"{i:06d}" + "y" * 16000}})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not metric(server, "slow_consumer_disconnects"):
            time.sleep(0.1)
        assert metric(server, "slow_consumer_resyncs") == 1
        assert metric(server, "slow_consumer_disconnects") == 1
        # The stuck client cannot even take the close frame: its socket is shut after a bound.
        while time.monotonic() < deadline + 5 and server.stats()["connections"] != 2:
            time.sleep(0.1)
        assert server.stats()["connections"] == 2
        deadline = time.monotonic() + 30  # sanitizer builds take their time
        while time.monotonic() < deadline and server.room_state("slow")["version"] != final:
            time.sleep(0.05)
        while time.monotonic() < deadline and not all(
                seen[n] and seen[n][-1]["version"] == final for n in ("writer", "good")):
            time.sleep(0.05)
    finally:
        stop.set()
        for t in readers:
            t.join()
        s.close()
    # The well-behaved members saw every delta, gapless, up to the last one.
    for name in ("writer", "good"):
        deltas = seen[name]
        assert deltas[-1]["version"] == final, name
        assert all(b["baseVersion"] == a["version"] for a, b in zip(deltas, deltas[1:])), name


def test_stuck_reader_is_resynced_then_disconnected_at_low_volume(make_server):
    # The same path as above with small bounds, so that it takes a few MB, not the test
    # above's 24 MB at 16 MB/s: ThreadSanitizer runs this one too.
    server = make_server(tick_rate=0, send_queue_max_bytes=64 * 1024,
                         send_queue_max_messages=16, slow_consumer_window=60,
                         rate_limit=100000, rate_burst=100000, read_bytes_per_second=0)
    writer = Wire(server.url)
    # A client that joins and never reads, with a small window: the kernel's buffers
    # between the server and it fill first, then its send queue.
    stuck, _ = raw_upgrade(server.port, receive_buffer=4096)
    started = time.monotonic()
    try:
        writer.join("stuck")
        stuck.sendall(masked_frame(b'{"type":"JOIN_ROOM","roomId":"stuck"}'))
        writer.expect("PLAYER_JOINED")
        sent = 0
        while not metric(server, "slow_consumer_disconnects") and sent < 2000:
            # One at a time, each ACKed: the writer never falls behind, only the stuck one.
            writer.send({"type": "STATE_UPDATE", "roomId": "stuck", "requestId": sent,
                         "payload": {"b": f"{sent:06d}" + "y" * 16000}})
            writer.expect("ACK", timeout=30, where=lambda m, i=sent: m.get("requestId") == i)
            writer.received.clear()  # what it read is not needed; 32 KB per update
            sent += 1
        assert metric(server, "slow_consumer_resyncs") == 1  # first overflow: FULL_STATE
        assert metric(server, "slow_consumer_disconnects") == 1  # second: 1008
        print(f"{sent} updates of 16 KB until the disconnect, "
              f"{time.monotonic() - started:.2f} s")
        # It cannot take the close frame either: its socket is shut after a bound.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and server.stats()["connections"] != 1:
            time.sleep(0.05)
        assert server.stats()["connections"] == 1
        # The room goes on for the writer.
        writer.send({"type": "STATE_UPDATE", "roomId": "stuck", "requestId": sent,
                     "payload": {"b": "done"}})
        assert writer.expect("ACK", timeout=30)["version"] == server.room_state("stuck")["version"]
    finally:
        stuck.close()
        writer.close()


def test_graceful_drain_closes_clients_with_1001(make_server, connect):
    server = make_server()
    a, b = connect(server), connect(server)
    a.join("d")
    b.join("d")
    t0 = time.monotonic()
    server.drain(timeout=5)
    assert time.monotonic() - t0 < 4
    for w in (a, b):
        code, reason = w.closed_with()
        assert code == 1001 and reason == "going away"
    assert not server.running
    with pytest.raises(OSError):
        Wire(server.url)


def test_empty_room_is_discarded_after_its_ttl(make_server, connect):
    server = make_server(room_empty_ttl=0.3, session_grace=0)
    a = connect(server)
    first = a.join("ttl")
    a.send({"type": "LEAVE_ROOM", "roomId": "ttl", "requestId": 1})
    a.expect("ACK")
    assert server.stats()["rooms"] == 1  # kept for a while, in case someone comes back
    deadline = time.monotonic() + 5
    while server.stats()["rooms"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.stats()["rooms"] == 0
    assert server.room_state("ttl") is None
    again = a.join("ttl")  # a new room: fresh epoch, version restarts
    assert again["epoch"] != first["epoch"]
    assert again["version"] == 1


def test_a_room_with_players_in_grace_is_kept(make_server, connect):
    server = make_server(room_empty_ttl=0.1, session_grace=1.0)
    a = connect(server)
    a.join("kept")
    a.close()
    time.sleep(0.5)
    assert server.stats()["rooms"] == 1  # the player may still come back
    deadline = time.monotonic() + 5
    while server.stats()["rooms"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.stats()["rooms"] == 0


def test_healthz_answers_503_while_draining(make_server):
    server = make_server()
    # A client that never reads keeps the drain waiting (at most until its socket is shut).
    s, head = raw_upgrade(server.port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    drainer = threading.Thread(target=server.drain, kwargs={"timeout": 3})
    drainer.start()
    try:
        time.sleep(0.3)
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=2)
        assert info.value.code == 503
        assert json.loads(info.value.read())["status"] == "draining"
        new, head = raw_upgrade(server.port)
        assert head.startswith(b"HTTP/1.1 503")
        new.close()
    finally:
        drainer.join()
        s.close()
    assert not server.running
