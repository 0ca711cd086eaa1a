"""A TCP proxy in front of redis-server that can break pub/sub without an error.

``Proxy(upstream_port)`` listens on a free port and forwards each connection to
127.0.0.1:upstream_port, except that connections whose first command is a SUBSCRIBE go to
``subscriber_port`` when one is given (pub/sub on another server than the commands, as
after a failover that moved only some connections).

``deafen_subscribers()`` makes every subscriber connection drop what Redis sends it from
then on, while both sockets stay open: a half-open connection that no error reveals.
``deafen_commands()`` does the same to the other connections: Redis runs what it gets, and
its replies are lost. ``drop_connections()`` closes every connection (new ones work).
``pass_one_command()`` lets each command connection forward one more command to Redis and
then hold what follows, until ``release_commands()`` sends it on: what Redis does between
two commands of a pipeline can be staged.
"""

from __future__ import annotations

import socket
import threading


class _Link:
    def __init__(self, client: socket.socket, server: socket.socket, subscriber: bool) -> None:
        self.client = client
        self.server = server
        self.subscriber = subscriber
        self.deaf = False
        self.passing: int | None = None  # commands it may forward still (None: no limit)
        self.held = bytearray()  # what it holds back meanwhile

    def close(self) -> None:
        for s in (self.client, self.server):
            try:
                s.shutdown(socket.SHUT_RDWR)  # at once, even with a recv() under way
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass


class Proxy:
    def __init__(self, upstream_port: int, subscriber_port: int | None = None) -> None:
        self.upstream_port = upstream_port
        self.subscriber_port = subscriber_port or upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}"
        self.links: list[_Link] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def deafen_subscribers(self) -> int:
        """Returns how many connections went deaf."""
        with self.lock:
            links = [link for link in self.links if link.subscriber]
        for link in links:
            link.deaf = True
        return len(links)

    def deafen_commands(self) -> int:
        """Returns how many connections went deaf."""
        with self.lock:
            links = [link for link in self.links if not link.subscriber]
        for link in links:
            link.deaf = True
        return len(links)

    def pass_one_command(self) -> None:
        with self.lock:
            for link in self.links:
                if not link.subscriber:
                    link.passing = 1

    def release_commands(self) -> None:
        with self.lock:
            for link in self.links:
                link.passing = None
                held, link.held = bytes(link.held), bytearray()
                try:
                    link.server.sendall(held)
                except OSError:
                    pass

    def drop_connections(self) -> None:
        with self.lock:
            links, self.links = self.links, []
        for link in links:
            link.close()

    def close(self) -> None:
        self.listener.close()
        with self.lock:
            for link in self.links:
                link.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            first = client.recv(65536)
            subscriber = b"SUBSCRIBE" in first.upper()
            port = self.subscriber_port if subscriber else self.upstream_port
            server = socket.create_connection(("127.0.0.1", port))
            server.sendall(first)
        except OSError:
            client.close()
            return
        link = _Link(client, server, subscriber)
        with self.lock:
            self.links.append(link)
        threading.Thread(target=self._pump, args=(link, False), daemon=True).start()
        self._pump(link, True)

    def _pump(self, link: _Link, upstream: bool) -> None:
        src, dst = (link.client, link.server) if upstream else (link.server, link.client)
        try:
            while data := src.recv(65536):
                if not upstream and link.deaf:
                    continue
                if upstream:
                    self._forward(link, data)
                else:
                    dst.sendall(data)
        except OSError:
            pass
        link.close()

    def _forward(self, link: _Link, data: bytes) -> None:
        """Sends `data`, from the client, to Redis, or what of it may pass, holding the rest
        (under the lock: release_commands() sends what is held before anything newer)."""
        with self.lock:
            if link.passing is not None:
                link.held += data
                data = b""
                while link.passing and (end := _command_end(link.held)) is not None:
                    data += link.held[:end]
                    del link.held[:end]
                    link.passing -= 1
            link.server.sendall(data)


def _command_end(buf: bytes | bytearray) -> int | None:
    """The end of the first command in `buf` (a RESP array of bulk strings, as clients send
    commands), or None while it is incomplete."""
    line = buf.find(b"\r\n")
    if line < 0:
        return None
    pos = line + 2
    for _ in range(int(buf[1:line])):
        line = buf.find(b"\r\n", pos)
        if line < 0:
            return None
        pos = line + 2 + int(buf[pos + 1:line]) + 2
        if pos > len(buf):
            return None
    return pos
