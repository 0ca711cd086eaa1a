"""A minimal blocking Redis client (RESP2): enough to drive and inspect test topologies
(PING, INFO, ROLE, SENTINEL, CLUSTER, CONFIG, SET/GET) without a client library.

It opens one connection per :func:`redis_call`, which costs a fraction of a millisecond on
loopback and keeps no state that a killed or failed-over server could leave stale.
"""

from __future__ import annotations

import socket
from typing import Any, BinaryIO

__all__ = ["RedisError", "parse_info", "redis_call"]


class RedisError(Exception):
    """The server answered with an error reply (``-ERR ...``, ``-READONLY ...``)."""


def _encode(args: tuple[Any, ...]) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _read(stream: BinaryIO, raw: bool = False) -> Any:
    """Reads one reply: str for simple and bulk strings (bytes for bulk strings when
    ``raw``), int, list, None (nil), or a RedisError instance for an error reply (raised by
    the caller, so that an error nested in an array does not abandon the rest of the
    reply)."""
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed by the server")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body.decode()
    if kind == b"-":
        return RedisError(body.decode())
    if kind == b":":
        return int(body)
    if kind == b"$":
        size = int(body)
        if size < 0:
            return None
        data = stream.read(size + 2)
        return data[:-2] if raw else data[:-2].decode(errors="replace")
    if kind == b"*":
        count = int(body)
        return None if count < 0 else [_read(stream, raw) for _ in range(count)]
    raise ConnectionError(f"not a RESP reply: {line!r}")


def redis_call(
    port: int,
    *args: Any,
    host: str = "127.0.0.1",
    password: str | None = None,
    db: int | str | None = None,
    raw: bool = False,
    timeout: float = 2.0,
) -> Any:
    """Sends one command to the Redis (or Sentinel) at ``host:port`` and returns its reply.

    Args:
        port, host: the server.
        *args: the command and its arguments (``redis_call(p, "SET", "k", 1)``).
        password: sent with AUTH first, when given.
        db: the database to SELECT first, when given.
        raw: bulk strings come back as bytes, unchanged (binary values such as MessagePack).
        timeout: seconds for connecting and for each read.

    Returns:
        str (or bytes, when ``raw``), int, None or a (nested) list, as the server answered.

    Raises:
        RedisError: the server answered with an error.
        OSError: no connection (refused, timed out, reset).
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        commands: list[tuple[Any, ...]] = [("AUTH", password)] if password else []
        commands += [("SELECT", db)] if db is not None else []
        commands.append(args)
        sock.sendall(b"".join(_encode(tuple(c)) for c in commands))
        with sock.makefile("rb") as stream:
            replies = [_read(stream, raw) for _ in commands]
    for reply in replies:
        if isinstance(reply, RedisError):
            raise reply
    return replies[-1]


def parse_info(text: str) -> dict[str, str]:
    """Returns the ``key:value`` lines of an INFO reply as a dict (sections merged)."""
    info: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and ":" in line:
            key, value = line.split(":", 1)
            info[key] = value
    return info
