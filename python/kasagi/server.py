"""``kasagi.Server``: configure, start and stop a Kasagi server inside this process.

The server runs on its own C++ I/O threads; every call here releases the GIL while the core
works, so Python threads (and asyncio clients in the same process) keep running.

Example::

    import kasagi

    with kasagi.Server(tick_rate=30) as server:   # a free port on 127.0.0.1
        print(server.url)                         # ws://127.0.0.1:41234/sync
        ...
"""

from __future__ import annotations

import ipaddress
from types import TracebackType
from typing import Any, Unpack

from kasagi import _core
from kasagi.config import Config, Settings
from kasagi.rooms import RoomType, RoomTypeBuilder, register

__all__ = ["Server"]


class Server:
    """A Kasagi server in this process: a thin, documented wrapper of ``_core.Server``.

    Args:
        config: the settings to start from. Default: :class:`Config` defaults, except
            ``port=0`` (a free port), because an embedded server should never collide with
            another one.
        **settings: any :class:`Config` field, overriding ``config``
            (``Server(tick_rate=0, max_members_per_room=4)``).

    Raises:
        ConfigError: a setting is unknown or invalid.
    """

    def __init__(self, config: Config | None = None, **settings: Unpack[Settings]) -> None:
        base = config if config is not None else Config(port=0)
        self._config = base.replace(**settings)
        self._core: Any = None
        self._room_types: list[type[RoomType]] = []

    # ------------------------------------------------------------------------------------
    # Room types

    def add_room_type(
        self, room_type: type[RoomType] | RoomTypeBuilder
    ) -> type[RoomType] | RoomTypeBuilder:
        """Registers a room type (a :class:`kasagi.RoomType` subclass, or the result of
        :func:`kasagi.room_type` with its decorated hooks) for the rooms whose
        id matches its ``rooms`` patterns; the first type registered that matches a room
        wins. Call before :meth:`start`. Returns ``room_type`` (usable as a decorator).

        Raises:
            TypeError: not a RoomType subclass.
            ValueError: its patterns, path rules or tick_rate are invalid.
            RuntimeError: the server is already running.
        """
        if self.running:
            raise RuntimeError("room types are registered before start()")
        declared = room_type.build() if isinstance(room_type, RoomTypeBuilder) else room_type
        if not (isinstance(declared, type) and issubclass(declared, RoomType)):
            raise TypeError(f"{room_type!r} is not a kasagi.RoomType subclass")
        declared.patterns()  # fail now rather than at start()
        declared.rules()
        declared.on_tick_rate()
        self._room_types.append(declared)
        return room_type

    @property
    def room_types(self) -> tuple[type[RoomType], ...]:
        """The registered room types, in order."""
        return tuple(self._room_types)

    # ------------------------------------------------------------------------------------
    # Lifecycle

    def start(self) -> Server:
        """Binds the port and starts the I/O threads; returns at once (with ``self``).

        Raises:
            RuntimeError: the server is already running, or the address cannot be bound.
        """
        if self.running:
            raise RuntimeError("the server is already running")
        core = _core.Server(self._config.to_core())
        for room_type in self._room_types:
            register(core, room_type)
        core.start()
        self._core = core
        return self

    def stop(self) -> None:
        """Stops at once: connections are closed with 1001 without waiting. Idempotent."""
        if self._core is not None:
            self._core.stop()

    def drain(self, timeout: float | None = None) -> None:
        """Graceful stop: closes every client with 1001 "going away", waits for them to go
        (at most ``timeout`` seconds, default ``config.drain_timeout``), then stops.
        Does nothing if the server is not running."""
        if self._core is not None:
            self._core.drain(self._config.drain_timeout if timeout is None else float(timeout))

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------
    # Addresses

    @property
    def config(self) -> Config:
        """The settings this server was created with (``port`` as configured, maybe 0)."""
        return self._config

    @property
    def running(self) -> bool:
        """True between a successful :meth:`start` and :meth:`stop` / :meth:`drain`."""
        return self._core is not None and bool(self._core.running)

    @property
    def host(self) -> str:
        """The configured listening address."""
        return self._config.host

    @property
    def port(self) -> int:
        """The bound port once started (the real one when configured as 0), else the
        configured one."""
        return int(self._core.port) if self._core is not None else self._config.port

    @property
    def tls(self) -> bool:
        """True when the server speaks TLS (``tls_cert`` and ``tls_key`` are set)."""
        return bool(self._config.tls_cert)

    @property
    def url(self) -> str:
        """The WebSocket URL clients connect to, e.g. ``ws://127.0.0.1:8080/sync``
        (``wss://`` with TLS).

        A wildcard listening address (0.0.0.0, ::) is replaced by the matching loopback
        address, so the URL is always one this machine can connect to.
        """
        return f"{'wss' if self.tls else 'ws'}://{self._connect_host()}:{self.port}/sync"

    @property
    def http_url(self) -> str:
        """The base URL of the HTTP endpoints, e.g. ``http://127.0.0.1:8080`` (add
        ``/healthz`` or ``/metrics``; ``https://`` with TLS)."""
        return f"{'https' if self.tls else 'http'}://{self._connect_host()}:{self.port}"

    def _connect_host(self) -> str:
        host = self._config.host
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return host  # a host name
        if ip.is_unspecified:
            ip = ipaddress.ip_address("::1" if ip.version == 6 else "127.0.0.1")
        return f"[{ip}]" if ip.version == 6 else str(ip)

    # ------------------------------------------------------------------------------------
    # Introspection

    def metrics(self) -> str:
        """Returns the Prometheus text exposition (the same as ``GET /metrics``)."""
        return str(self._started().metrics())

    def stats(self) -> dict[str, int]:
        """Returns ``{"connections", "rooms", "members"}``: the current counts."""
        return dict(self._started().stats())

    def room_state(self, room_id: str) -> dict[str, Any] | None:
        """Returns the authoritative ``{"state", "version", "tick", "epoch"}`` of a room, or
        None if the server holds no room with that id."""
        result = self._started().room_state(room_id)
        return None if result is None else dict(result)

    def session_claims(self) -> list[dict[str, Any]]:
        """Returns the verified token claims of every open WebSocket connection, in no
        particular order (``{}`` for a connection without a token). A debugging aid."""
        return list(self._started().session_claims())

    def _started(self) -> Any:
        if self._core is None:
            raise RuntimeError("the server has not been started; call start() first")
        return self._core

    def __repr__(self) -> str:
        state = f"running on port {self.port}" if self.running else "stopped"
        return f"<kasagi.Server {self._config.host} {state}>"
