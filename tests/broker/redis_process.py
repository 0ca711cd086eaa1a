"""Real redis-server processes for the broker tests, and a raw RESP client to look inside.

- ``RedisProcess``: ``redis-server --port P --save '' --appendonly no`` on 127.0.0.1; kill
  and restart it on the same port, pause and resume it (SIGSTOP/SIGCONT).
- ``Resp``: a minimal blocking RESP2 client (one socket, one command at a time), so that the
  tests check what is stored without relying on the code under test.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from kasagi.testing import free_port

__all__ = ["Resp", "RespError", "RedisProcess", "free_port"]




class RespError(Exception):
    """An error reply."""


class Resp:
    """A blocking RESP2 client: ``Resp(port).call("GET", "k")``."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Resp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, *args: str | bytes | int) -> Any:
        """Sends one command; returns its reply (bytes, int, list or None)."""
        parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        out = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
        self.sock.sendall(out)
        reply = self._reply()
        if isinstance(reply, RespError):
            raise reply
        return reply

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2 :]
        return data

    def _reply(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            return RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            return None if int(rest) < 0 else self._exactly(int(rest))
        if kind == b"*":
            return None if int(rest) < 0 else [self._reply() for _ in range(int(rest))]
        raise ValueError(f"unexpected RESP line {line!r}")


class RedisProcess:
    """A redis-server on 127.0.0.1:``port`` (its log in ``log_dir``)."""

    def __init__(self, port: int, log_dir: Path, *extra: str) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}"
        self.log = log_dir / f"redis-{port}.log"
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        """Starts the server (again) and waits until it answers PING."""
        # --dir: a replica writes the RDB it receives there.
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(self.log.parent), "--logfile", str(self.log),
               *self.extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                with self.client() as r:
                    r.call("PING")
                return
            except RespError:  # NOAUTH: it answers
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.kill()
                    raise RuntimeError(f"redis-server did not start; see {self.log}") from None
                time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: connections drop at once, nothing is saved."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def pause(self) -> None:
        """SIGSTOP: connections stay open, nothing is answered."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def client(self) -> Resp:
        """A raw connection (``with redis.client() as r: r.call("GET", key)``)."""
        return Resp(self.port)
