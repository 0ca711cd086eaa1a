"""Attacks by volume: a message flood, a join flood, and a client that never reads."""

from __future__ import annotations

import itertools
import socket
import threading
import time

from raw import close_code, frame, messages, server_frames, text, websocket

POLICY = 1008
_rooms = itertools.count()


def flood(sock, burst: bytes, seconds: float) -> threading.Thread:
    """Sends ``burst`` over and over for ``seconds`` (or until the server closes) on a thread
    of its own, so that the caller can read meanwhile."""

    def send() -> None:
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                sock.sendall(burst)
                time.sleep(0.005)
        except OSError:
            pass  # the server has closed

    thread = threading.Thread(target=send)
    thread.start()
    return thread


def test_message_flood_is_rate_limited_then_closed_1008(target) -> None:
    server = target()  # 100 messages/s, closed after 1 s of continuous limiting

    def attack() -> int | None:
        with websocket(server.port) as sock:
            room = f"flood-{next(_rooms)}"
            sock.sendall(text({"type": "JOIN_ROOM", "roomId": room}))
            burst = text({"type": "STATE_UPDATE", "roomId": room, "payload": {"x": 1}}) * 50
            sender = flood(sock, burst, seconds=10)
            code = close_code(sock, timeout=15)
            sender.join()
            return code

    server.withstands(attack, expect=lambda code: code == POLICY)
    assert server.metric("kasagi_rate_limit_disconnects_total") > 0
    assert server.metric('kasagi_errors_total{code="RATE_LIMITED"}') > 0


def test_join_flood_from_one_address_is_rate_limited(target) -> None:
    server = target()  # 5 joins/s per address, bursts of 10
    started = time.monotonic()

    def attack() -> list[str]:
        with websocket(server.port) as sock:
            for _ in range(8):
                sock.sendall(text({"type": "JOIN_ROOM", "roomId": f"spray-{next(_rooms)}"}))
            answers = messages(sock, 8)
            return [m["type"] if m["type"] != "ERROR" else m["payload"]["code"] for m in answers]

    outcomes = server.withstands(
        attack, expect=lambda answers: set(answers) <= {"FULL_STATE", "RATE_LIMITED"}
    )
    elapsed = time.monotonic() - started
    joined = sum(answers.count("FULL_STATE") for answers in outcomes)
    limited = sum(answers.count("RATE_LIMITED") for answers in outcomes)
    assert limited > 0
    assert joined <= 10 + 5 * elapsed + 1, (joined, elapsed)  # the bucket, nothing more
    assert server.metric("kasagi_rooms") <= 10 + 5 * elapsed + 2  # the bystander's room too


def test_client_that_never_reads_is_disconnected(target) -> None:
    # Fast writers, so that a stuck reader's buffers fill within seconds.
    server = target("--tick-rate", "0", "--rate-limit", "1000", "--rate-burst", "1000",
                    "--read-bytes-per-second", "0", "--slow-consumer-window", "60")

    def attack() -> bool:
        room = f"busy-{next(_rooms)}"
        before = server.metric("kasagi_slow_consumer_disconnects_total")
        with websocket(server.port) as writer, \
                websocket(server.port, receive_buffer=4096) as stuck:
            writer.sendall(text({"type": "JOIN_ROOM", "roomId": room}))
            stuck.sendall(text({"type": "JOIN_ROOM", "roomId": room}))
            # The writer reads what it is sent (it is not the slow one) and writes fast;
            # every update changes the state (equal writes make no delta).
            reader = threading.Thread(target=lambda: sum(1 for _ in server_frames(writer, 60)))
            reader.start()
            burst = b"".join(
                text({"type": "STATE_UPDATE", "roomId": room, "payload": {"b": f"{i}" * 15000}})
                for i in range(20)
            )
            sender = flood(writer, burst, seconds=30)
            deadline = time.monotonic() + 30
            while (server.metric("kasagi_slow_consumer_disconnects_total") == before
                   and time.monotonic() < deadline):
                time.sleep(0.1)
            writer.shutdown(socket.SHUT_RDWR)
            sender.join()
            reader.join()
            # Now read the stuck one: what was buffered, then the end of the connection.
            return time.monotonic() < deadline and close_code(stuck, timeout=30) in (None, POLICY)

    server.withstands(attack, threads=1, expect=lambda closed: closed)
