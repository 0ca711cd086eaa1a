"""Attacks with WebSocket frames: too big, lying about their size, cut into tiny fragments,
compressed into a bomb, or an endless stream of empty fragments."""

from __future__ import annotations

import json
import socket
import time
import zlib

import pytest
from websockets.sync.client import connect

from raw import close_code, frame, messages, open_socket, upgrade_request, websocket

TOO_BIG = 1009
POLICY = 1008


@pytest.mark.parametrize("declared", [1024 * 1024, 2**63 - 1], ids=["1 MiB", "64-bit length"])
def test_oversized_frame_is_closed_1009_before_it_is_buffered(target, declared: int) -> None:
    server = target()  # max_frame_bytes 64 KiB

    def attack() -> int | None:
        with websocket(server.port) as sock:
            # The header announces `declared` bytes; only the start of them follows.
            sock.sendall(frame(b"x" * 1000, length=declared))
            return close_code(sock)

    server.withstands(attack, expect=lambda code: code == TOO_BIG)


def test_fragments_are_bounded_by_their_message_total_1009(target) -> None:
    # Two 40 KiB fragments: each under max_frame_bytes (64 KiB), together over it. The total
    # so far is checked at every frame header, so the second header alone gets the close.
    server = target()
    first = frame(b"{" + b" " * (40 * 1024 - 1), fin=False)
    second = frame(b" " * 40 * 1024 + b"}", opcode=0x0)
    header = len(second) - (40 * 1024 + 1)  # with its 16-bit length and its mask

    def attack() -> int | None:
        with websocket(server.port) as sock:
            sock.sendall(first + second[:header])  # none of the second fragment's payload
            return close_code(sock)

    server.withstands(attack, expect=lambda code: code == TOO_BIG)
    # Within the total the same pieces are a message, refused by its size alone (16 KiB).
    with websocket(server.port) as sock:
        sock.sendall(frame(b"{" + b" " * (30 * 1024), fin=False)
                     + frame(b" " * 30 * 1024 + b"}", opcode=0x0))
        (error,) = messages(sock, 1)
        assert error["payload"]["code"] == "TOO_LARGE"


def test_flood_of_tiny_fragments_is_closed_1008(target) -> None:
    server = target()

    def attack() -> int | None:
        with websocket(server.port) as sock:
            flood = frame(b"{", fin=False) + frame(b" ", opcode=0x0, fin=False) * 10_000
            try:
                sock.sendall(flood)
            except (BrokenPipeError, ConnectionResetError):
                pass  # closed while we were still sending: read what it said
            return close_code(sock)

    server.withstands(attack, expect=lambda code: code == POLICY)
    assert server.metric("kasagi_fragment_disconnects_total") > 0


def test_legitimate_fragments_still_work(target) -> None:
    server = target()
    with websocket(server.port) as sock:
        text = json.dumps({"type": "PING", "timestamp": 1}).encode()
        sock.sendall(frame(text[:5], fin=False) + frame(text[5:10], opcode=0, fin=False)
                     + frame(text[10:], opcode=0))
        assert b"PONG" in sock.recv(4096)


def test_large_frame_trickling_in_small_pieces_is_accepted(target) -> None:
    # A slow link: one 12 KB frame whose bytes arrive 100 at a time.
    server = target()
    with websocket(server.port) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = frame(json.dumps({"type": "PING", "timestamp": 1, "pad": "x" * 12_000}).encode())
        for i in range(0, len(data), 100):
            sock.sendall(data[i:i + 100])
            time.sleep(0.002)
        assert b"PONG" in sock.recv(4096)


def test_decompression_bomb_is_closed_1009(target) -> None:
    server = target("--permessage-deflate")
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = deflate.compress(b"\x20" * 50_000_000) + deflate.flush(zlib.Z_SYNC_FLUSH)
    bomb = bomb[:-4]  # permessage-deflate drops the 00 00 ff ff tail (RFC 7692)
    assert len(bomb) < 100_000  # 50 MB of spaces in a small frame

    def attack() -> int | None:
        extension = "Sec-WebSocket-Extensions: permessage-deflate\r\n"
        with websocket(server.port, extra=extension) as sock:
            try:
                sock.sendall(frame(bomb, rsv1=True))
            except (BrokenPipeError, ConnectionResetError):
                pass
            return close_code(sock)

    server.withstands(attack, threads=2, expect=lambda code: code == TOO_BIG)
    # A client that compresses honestly is served.
    with connect(server.serve.url, compression="deflate") as ws:
        ws.send(json.dumps({"type": "PING", "timestamp": 7}))
        assert json.loads(ws.recv(timeout=5))["type"] == "PONG"
        assert ws.protocol.extensions  # permessage-deflate was negotiated


def test_compression_is_off_by_default(target) -> None:
    server = target()
    with open_socket(server.port) as sock:
        extension = "Sec-WebSocket-Extensions: permessage-deflate\r\n"
        sock.sendall(upgrade_request(server.port, extension))
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101") and b"permessage-deflate" not in head


def test_empty_fragment_stream_is_throttled_by_the_read_budget(target) -> None:
    # Empty fragments never become a message the rate limiter could count; the read budget
    # still holds the connection to read_bytes_per_second.
    budget = 64 * 1024
    server = target("--read-bytes-per-second", str(budget))
    flood_bytes = 4 * budget
    empties = flood_bytes // 6  # an empty masked frame is 6 bytes

    def attack() -> float:
        with websocket(server.port) as sock:
            started = time.monotonic()
            ping = json.dumps({"type": "PING", "timestamp": 1}).encode()
            sock.sendall(frame(b"", fin=False) + frame(b"", opcode=0, fin=False) * empties
                         + frame(ping, opcode=0))
            sock.settimeout(30)
            assert b"PONG" in sock.recv(4096)
            return time.monotonic() - started

    # Four budgets' worth take at least about three seconds (the first second is a burst).
    durations = server.withstands(attack, threads=1, expect=lambda seconds: seconds > 2.0)
    assert all(isinstance(d, float) for d in durations)
