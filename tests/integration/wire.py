"""A raw protocol client for conformance tests, written from PROTOCOL.md alone.

It speaks frames, not state: tests use it to send exactly what they mean (including garbage)
and to see exactly what the server sends back. The full client lives in kasagi.client.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any, Callable

import msgpack
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

__all__ = ["Wire", "raw_upgrade"]

SUBPROTOCOL = {"json": "kasagi.v1.json", "msgpack": "kasagi.v1.msgpack"}


class Wire:
    """One WebSocket connection speaking JSON or MessagePack frames."""

    def __init__(self, url: str, encoding: str = "json", *, offer: bool = True,
                 **options: Any) -> None:
        """``options`` go to websockets' ``connect`` (``additional_headers``, ``ssl``...)."""
        self.encoding = encoding
        protocols = [SUBPROTOCOL[encoding]] if offer else None
        # Entered as a context manager (closed in close()), as websockets >= 17.1 wants.
        self.ws: ClientConnection = connect(url, subprotocols=protocols, max_size=None, max_queue=None,
                                            open_timeout=20, **options).__enter__()
        self.received: list[dict[str, Any]] = []

    def encode(self, msg: dict[str, Any]) -> str | bytes:
        if self.encoding == "json":
            return json.dumps(msg)
        return msgpack.packb(msg, use_bin_type=True)

    def decode(self, frame: str | bytes) -> dict[str, Any]:
        if self.encoding == "json":
            assert isinstance(frame, str), "JSON sessions get text frames"
            return json.loads(frame)
        assert isinstance(frame, bytes), "MessagePack sessions get binary frames"
        return msgpack.unpackb(frame, raw=False)

    def send(self, msg: dict[str, Any]) -> None:
        self.ws.send(self.encode(msg))

    def send_raw(self, frame: str | bytes) -> None:
        self.ws.send(frame)

    def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        msg = self.decode(self.ws.recv(timeout=timeout))
        self.received.append(msg)
        return msg

    def expect(self, type_: str, timeout: float = 5.0,
               where: Callable[[dict[str, Any]], bool] = lambda m: True) -> dict[str, Any]:
        """Returns the next message of `type_` matching `where`, skipping others."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {type_} within {timeout}s; got {self.received[-5:]}")
            msg = self.recv(left)
            if msg["type"] == type_ and where(msg):
                return msg

    def quiet(self, seconds: float = 0.3) -> list[dict[str, Any]]:
        """Returns everything that arrives within `seconds`."""
        out = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                out.append(self.recv(left))
            except TimeoutError:
                break
        return out

    def join(self, room: str, **payload: Any) -> dict[str, Any]:
        self.send({"type": "JOIN_ROOM", "roomId": room, "payload": payload})
        return self.expect("FULL_STATE", where=lambda m: m.get("roomId") == room)

    def closed_with(self, timeout: float = 5.0) -> tuple[int | None, str]:
        """Waits for the server to close; returns (code, reason)."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        except ConnectionClosed as e:
            rcvd = e.rcvd
            return (rcvd.code, rcvd.reason) if rcvd else (None, "")
        raise TimeoutError("connection still open")

    def close(self) -> None:
        self.ws.close()


def raw_upgrade(port: int, path: str = "/sync", protocols: str | None = None,
                timeout: float = 5.0,
                receive_buffer: int | None = None) -> tuple[socket.socket, bytes]:
    """Performs a WebSocket handshake by hand and returns (socket, response head).

    For tests that need a client that never reads or never answers pings;
    ``receive_buffer`` shrinks the kernel's receive buffer before connecting, so that the
    TCP window stays that small."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
             "Sec-WebSocket-Version: 13"]
    if protocols is not None:
        lines.append(f"Sec-WebSocket-Protocol: {protocols}")
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    return s, head


def masked_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A client-to-server frame (clients must mask)."""
    mask = b"\x01\x02\x03\x04"
    n = len(payload)
    if n < 126:
        header = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        header = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + body
