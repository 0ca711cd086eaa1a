"""Raw sockets for the abuse tests: hand-made HTTP requests and WebSocket frames, including
the malformed and hostile ones no client library would send."""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

__all__ = [
    "close_code",
    "frame",
    "messages",
    "open_socket",
    "read_status",
    "server_frames",
    "text",
    "upgrade_request",
    "websocket",
]

KEY_HEADERS = (
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


def open_socket(port: int, source: str = "127.0.0.1", timeout: float = 5.0,
                receive_buffer: int | None = None) -> socket.socket:
    """A TCP connection to the server from ``source``; ``receive_buffer`` shrinks the
    kernel's receive buffer (set before connecting, so that the window stays small)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.settimeout(timeout)
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    return sock


def upgrade_request(port: int, extra: str = "") -> bytes:
    """A WebSocket upgrade request for /sync; ``extra``: more header lines, each ending in
    CRLF."""
    return (f"GET /sync HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{KEY_HEADERS}{extra}\r\n").encode()


def read_status(sock: socket.socket) -> int:
    """Reads an HTTP response head; returns its status code (0 if the server just closed)."""
    head = b""
    while b"\r\n\r\n" not in head:
        try:
            chunk = sock.recv(4096)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        head += chunk
    if not head.startswith(b"HTTP/1.1 "):
        return 0
    return int(head[9:12])


def websocket(port: int, source: str = "127.0.0.1", extra: str = "",
              receive_buffer: int | None = None) -> socket.socket:
    """An open WebSocket connection (JSON, the default), as a plain socket."""
    sock = open_socket(port, source, receive_buffer=receive_buffer)
    try:
        sock.sendall(upgrade_request(port, extra))
        status = read_status(sock)
        assert status == 101, f"upgrade answered {status}"
    except BaseException:
        sock.close()  # a refused attempt leaves no socket behind
        raise
    return sock


def frame(payload: bytes = b"", opcode: int = 0x1, fin: bool = True, length: int | None = None,
          rsv1: bool = False) -> bytes:
    """A masked client frame. ``length`` overrides the declared payload length (to lie)."""
    n = len(payload) if length is None else length
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    if n < 126:
        header = struct.pack("!BB", first, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, n)
    mask = b"\x0f\x1e\x2d\x3c"
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def server_frames(sock: socket.socket, timeout: float = 10.0) -> Iterator[tuple[int, bytes]]:
    """Yields the server's frames as (opcode, payload) until the connection ends or
    ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    buffer = b""
    while time.monotonic() < deadline:
        while len(buffer) >= 2:
            opcode, n = buffer[0] & 0x0F, buffer[1] & 0x7F
            offset = {126: 4, 127: 10}.get(n, 2)
            if len(buffer) < offset:
                break
            if n >= 126:
                (n,) = struct.unpack("!H" if n == 126 else "!Q", buffer[2:offset])
            if len(buffer) < offset + n:
                break
            yield opcode, buffer[offset:offset + n]
            buffer = buffer[offset + n:]
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError, BrokenPipeError):
            return
        if not chunk:
            return
        buffer += chunk


def close_code(sock: socket.socket, timeout: float = 10.0) -> int | None:
    """Reads server frames until a close frame; returns its code, or None when the
    connection ends without one."""
    for opcode, payload in server_frames(sock, timeout):
        if opcode == 0x8:
            return int(struct.unpack("!H", payload[:2])[0]) if len(payload) >= 2 else None
    return None


def messages(sock: socket.socket, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Reads ``count`` JSON messages (fewer if the connection ends or time runs out)."""
    out: list[dict[str, Any]] = []
    for opcode, payload in server_frames(sock, timeout):
        if opcode == 0x1:
            out.append(json.loads(payload))
            if len(out) == count:
                break
    return out


def text(message: dict[str, Any]) -> bytes:
    """A masked text frame carrying ``message`` as JSON."""
    return frame(json.dumps(message).encode())
