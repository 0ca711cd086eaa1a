"""Python clients of the Kasagi protocol: :class:`AsyncClient` (asyncio) and :class:`Client`
(blocking), for tests, bots and scripts.

Both speak PROTOCOL.md (docs/protocol.md) directly, with their own pure-Python codec
(``json`` and ``msgpack``), independently of the server's C++ codec: they double as a
conformance check of the server. A receive loop keeps one :class:`~kasagi.mirror.RoomMirror`
per joined room current, resyncs it automatically when a delta cannot apply (a gap or an
epoch change), and, after an unexpected disconnect, reconnects with backoff and resumes every
room with its ``sessionToken`` and ``lastVersion`` (same playerId; missed deltas or a fresh
FULL_STATE).

Example::

    async with AsyncClient() as client:
        await client.connect("ws://127.0.0.1:8080/sync", encoding="msgpack")
        room = await client.join("lobby", playerName="ada")
        await client.update("lobby", {"x": 1}, ack=True)
        await client.wait_version("lobby", room.version + 1)

Exceptions:
    KasagiError: the server answered a request with ``ERROR`` (``.code``, ``.message``,
        ``.request_id``, ``.room_id``).
    Disconnected: a :class:`ConnectionError`: the connection was lost while a request awaited
        its answer, or the client is closed or not connected.
    FrameError: a :class:`ValueError`: a frame could not be decoded (raised by
        :func:`decode_frame`; the receive loop records such frames in ``decode_errors``).
    TimeoutError: an answer or a condition did not come in time.
    websockets' InvalidHandshake, InvalidURI, OSError: the first connection failed
        (:meth:`AsyncClient.connect` raises them as they are).

Message log: every decoded message is kept in ``messages`` (bounded) with a running count
``received``; :meth:`AsyncClient.mark` returns that count, and
:meth:`AsyncClient.wait_message` finds the first matching message at or after a mark. The
send methods return the mark taken just before sending, so a test can write::

    mark = await client.send_raw(b"\\xc1")
    error = await client.wait_message("ERROR", since=mark)
"""

from __future__ import annotations

import asyncio
import collections
import functools
import inspect
import itertools
import json
import logging
import os
import random
import secrets
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from types import TracebackType
from typing import IO, Any, TypeVar

import msgpack  # type: ignore[import-untyped,unused-ignore]
from websockets.exceptions import ConnectionClosed

from kasagi.mirror import RoomMirror
from kasagi.trace.records import TraceWriter

try:  # websockets >= 13: the new asyncio implementation
    from websockets.asyncio.client import connect as _ws_connect
except ImportError:  # pragma: no cover - websockets 12
    from websockets.client import connect as _ws_connect  # type: ignore[no-redef,attr-defined,unused-ignore]

__all__ = [
    "ENCODINGS",
    "AsyncClient",
    "Client",
    "Disconnected",
    "FrameError",
    "KasagiError",
    "decode_frame",
    "encode_frame",
    "subprotocol",
]

log = logging.getLogger("kasagi.client")

T = TypeVar("T")
Message = dict[str, Any]
Callback = Callable[[Message], Any]

#: The wire encodings, each negotiated as subprotocol ``kasagi.v1.<encoding>``.
ENCODINGS: tuple[str, ...] = ("json", "msgpack")

#: Message types that also go to the events queue (:meth:`AsyncClient.next_event`).
EVENT_TYPES = frozenset({"PLAYER_JOINED", "PLAYER_LEFT", "ROOM_EVENT", "ERROR"})

#: Close codes that mean "this client misbehaved": reconnecting would repeat the offence, so
#: the client does not reconnect after them (protocol error, unsupported data, bad payload,
#: policy violation such as rate limits or a slow consumer, message too big).
NO_RECONNECT_CLOSE_CODES = frozenset({1002, 1003, 1007, 1008, 1009, 1010})

_ws_parameters = inspect.signature(_ws_connect).parameters
# websockets >= 14 calls it additional_headers, the legacy implementation extra_headers.
_HEADERS_PARAMETER = (
    "additional_headers" if "additional_headers" in _ws_parameters else "extra_headers"
)


def _frame_size(frame: str | bytes) -> int:
    """Bytes of a frame's payload on the wire (a text frame is UTF-8)."""
    return len(frame.encode()) if isinstance(frame, str) else len(frame)


def _refused(err: Exception) -> bool:
    """True if a handshake failed because the server refused our credentials (401, 403)."""
    response = getattr(err, "response", None)
    status = getattr(response, "status_code", getattr(err, "status_code", None))
    return status in (401, 403)


# ----------------------------------------------------------------------------------------
# Errors


class KasagiError(Exception):
    """The server answered with an ``ERROR`` message.

    Attributes:
        code: the error code (``BAD_MESSAGE``, ``ROOM_FULL``, ``FORBIDDEN``, ``CONFLICT``...).
        message: the server's human-readable explanation.
        request_id: the requestId the error echoes, if any.
        room_id: the roomId the error echoes, if any.
        msg: the whole ERROR message.
    """

    def __init__(
        self,
        code: str,
        message: str,
        request_id: int | None = None,
        room_id: str | None = None,
        msg: Message | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.request_id = request_id
        self.room_id = room_id
        self.msg = msg

    @classmethod
    def from_message(cls, msg: Message) -> KasagiError:
        """Returns the exception for an ERROR message."""
        payload = msg.get("payload") or {}
        return cls(
            str(payload.get("code", "INTERNAL")),
            str(payload.get("message", "")),
            msg.get("requestId"),
            msg.get("roomId"),
            msg,
        )


class Disconnected(ConnectionError):
    """The connection was lost (or the client closed) before the answer came."""


class FrameError(ValueError):
    """A frame received from the server is not a valid protocol message."""


# ----------------------------------------------------------------------------------------
# Codec


def subprotocol(encoding: str) -> str:
    """Returns the WebSocket subprotocol of an encoding: ``kasagi.v1.json`` or
    ``kasagi.v1.msgpack``."""
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding: must be 'json' or 'msgpack', not {encoding!r}")
    return f"kasagi.v1.{encoding}"


def encode_frame(encoding: str, msg: Message) -> str | bytes:
    """Encodes a message: a JSON text (text frame) or MessagePack bytes (binary frame).

    Integers and floats stay distinct in both encodings. The message is not validated: any
    dict is encoded as it is, which is what tests of bad input need.
    """
    if encoding == "json":
        return json.dumps(msg, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if encoding == "msgpack":
        data: bytes = msgpack.packb(msg, use_bin_type=True)
        return data
    raise ValueError(f"encoding: must be 'json' or 'msgpack', not {encoding!r}")


def decode_frame(encoding: str, frame: str | bytes) -> Message:
    """Decodes one frame into a message dict.

    Raises:
        FrameError: the frame is not a JSON object / MessagePack map of the encoding, or its
            ``type`` is not a string.
    """
    try:
        if encoding == "json":
            msg = json.loads(frame)
        elif encoding == "msgpack":
            if isinstance(frame, str):
                raise FrameError("msgpack encoding: received a text frame")
            msg = msgpack.unpackb(frame, raw=False)
        else:
            raise ValueError(f"encoding: must be 'json' or 'msgpack', not {encoding!r}")
    except FrameError:
        raise
    except Exception as err:
        raise FrameError(f"undecodable {encoding} frame: {err}") from None
    if not isinstance(msg, dict):
        raise FrameError(f"frame is not a map: {type(msg).__name__}")
    if not isinstance(msg.get("type"), str):
        raise FrameError("frame has no string 'type'")
    return msg


# ----------------------------------------------------------------------------------------
# asyncio client


class AsyncClient:
    """An asyncio client of one Kasagi server (one WebSocket connection, many rooms).

    Args:
        history: how many received messages ``messages`` keeps (and the events queue holds).
        request_timeout: default seconds to wait for an answer (join, ack, ping, resync,
            leave) and for the ``wait_*`` helpers.
        open_timeout: seconds for one WebSocket handshake.
        reconnect_delay: first delay before a reconnection attempt; doubled (with jitter) after
            each failure, up to ``reconnect_max_delay``.
        reconnect_max_delay: longest delay between reconnection attempts.
        max_size: largest message accepted from the server, in bytes (None: no limit).
        keepalive: seconds between client-side WebSocket pings, or None (the default: the
            server pings idle connections, and the client answers them automatically).
        trace: a file path (appended to) or a writable binary stream: every message received
            and sent is recorded there with its time and size (:mod:`kasagi.trace` reads it).
        name: this client's name in its trace (default: a random one).

    Attributes:
        rooms: roomId to :class:`RoomMirror`, for every room joined (or being joined).
        messages: the last ``history`` decoded messages, oldest first.
        received: how many messages were received in all (the next message's mark).
        errors: the ERROR messages received (bounded).
        decode_errors: descriptions of the frames that could not be decoded (bounded).
        resyncs: RESYNCs sent automatically (gaps and epoch changes) over all rooms.
        reconnects: successful reconnections after an unexpected disconnect.
        disconnects: (code, reason) of every connection loss, in order.
        close_code: the close code of the last connection loss (1006: no close frame).
        close_reason: the close reason of the last connection loss.
    """

    def __init__(
        self,
        *,
        history: int = 10_000,
        request_timeout: float = 10.0,
        open_timeout: float = 10.0,
        reconnect_delay: float = 0.05,
        reconnect_max_delay: float = 2.0,
        max_size: int | None = 64 * 1024 * 1024,
        keepalive: float | None = None,
        trace: str | os.PathLike[str] | IO[bytes] | None = None,
        name: str | None = None,
    ) -> None:
        self.url: str | None = None
        self.name = name or f"client-{secrets.token_hex(3)}"
        self._trace = TraceWriter(trace, source="client", client=self.name) if trace else None
        self.urls: list[str] = []
        self.encoding = "json"
        self.auto_reconnect = True
        self.request_timeout = request_timeout
        self._open_timeout = open_timeout
        self._reconnect_delay = reconnect_delay
        self._reconnect_max_delay = reconnect_max_delay
        self._max_size = max_size
        self._keepalive = keepalive
        self._subprotocols: list[str] | None = None
        self._token: str | None = None
        self._ssl: ssl.SSLContext | None = None

        self.rooms: dict[str, RoomMirror] = {}
        self.messages: collections.deque[Message] = collections.deque(maxlen=history)
        self.received = 0
        self.errors: collections.deque[Message] = collections.deque(maxlen=history)
        self.decode_errors: collections.deque[str] = collections.deque(maxlen=1000)
        self.resyncs = 0
        self.reconnects = 0
        self.disconnects: list[tuple[int | None, str]] = []
        self.close_code: int | None = None
        self.close_reason: str | None = None

        self._history = history
        self._events: asyncio.Queue[Message] = asyncio.Queue()
        self._callbacks: dict[str, list[Callback]] = collections.defaultdict(list)
        self._ws: Any = None
        self._connected = asyncio.Event()
        self._progress = asyncio.Event()
        self._closing = False
        self._run_task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Message]] = {}  # by requestId
        self._pings: dict[int, asyncio.Future[Message]] = {}  # by timestamp
        self._join_requests: dict[str, int] = {}  # roomId -> requestId of its JOIN_ROOM
        self._request_ids = itertools.count(1)
        self._last_timestamp = 0
        self._background: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------------------------
    # Connection

    async def connect(
        self,
        url: str | Sequence[str],
        *,
        encoding: str = "json",
        auto_reconnect: bool = True,
        subprotocols: Iterable[str] | None = None,
        token: str | None = None,
        ca_file: str | None = None,
    ) -> AsyncClient:
        """Opens the connection and starts the receive loop; returns ``self``.

        Args:
            url: the server's WebSocket URL, ``ws://host:port/sync`` (``wss://`` for TLS);
                or several instances' URLs: the first is connected to, and a reconnection
                that fails moves on to the next (with Redis, every instance serves every room).
            encoding: ``"json"`` or ``"msgpack"``; offered as subprotocol
                ``kasagi.v1.<encoding>``, which the server must accept.
            auto_reconnect: after an unexpected disconnect, reconnect with backoff and resume
                every room. Not after :meth:`close`, nor after a close code in
                NO_RECONNECT_CLOSE_CODES.
            subprotocols: for conformance tests: offer exactly these subprotocols (maybe
                none) instead, and accept whatever the server selects. ``encoding`` still
                chooses the codec.
            token: a JWT for servers that require one, sent as ``Authorization: Bearer``
                on every (re)connection. Reconnecting stops when the server refuses it
                (HTTP 401 or 403).
            ca_file: for ``wss://``: a PEM file of the certificate authorities to trust
                instead of the system's (a test or private CA).

        Raises:
            RuntimeError: the client is already connected.
            ValueError: ``ca_file`` was given for a ``ws://`` URL.
            ConnectionError: the server did not select the offered subprotocol.
            websockets.exceptions.InvalidHandshake, OSError, TimeoutError: the connection
                could not be opened.
        """
        if self._run_task is not None and not self._run_task.done():
            raise RuntimeError("the client is already connected")
        subprotocol(encoding)  # validates
        self.urls = [url] if isinstance(url, str) else list(url)
        if not self.urls:
            raise ValueError("url: give at least one URL")
        if ca_file is not None and not all(u.startswith("wss://") for u in self.urls):
            raise ValueError("ca_file is for wss:// URLs only")
        self._token = token
        self._ssl = ssl.create_default_context(cafile=ca_file) if ca_file is not None else None
        self.url = self.urls[0]
        self.encoding = encoding
        self.auto_reconnect = auto_reconnect
        self._subprotocols = list(subprotocols) if subprotocols is not None else None
        self._closing = False
        ws = await self._open()
        self._set_connection(ws)
        if self._trace is not None:
            self._trace.write(kind="connect", client=self.name, url=self.url, encoding=encoding)
        self._run_task = asyncio.create_task(self._run(ws), name="kasagi-client")
        return self

    async def _open(self) -> Any:
        assert self.url is not None
        offered = self._subprotocols
        if offered is None:
            offered = [subprotocol(self.encoding)]
        kwargs: dict[str, Any] = {
            "subprotocols": offered,
            "open_timeout": self._open_timeout,
            "max_size": self._max_size,
            "compression": None,  # frame sizes on the wire are what the limits count
            "ping_interval": self._keepalive,
            "ping_timeout": self._keepalive,
            "close_timeout": 5,
        }
        if "proxy" in _ws_parameters:
            kwargs["proxy"] = None  # never route a game connection through an HTTP proxy
        if self._token is not None:
            kwargs[_HEADERS_PARAMETER] = {"Authorization": f"Bearer {self._token}"}
        if self._ssl is not None:
            kwargs["ssl"] = self._ssl
        ws = await _ws_connect(self.url, **kwargs)
        if self._subprotocols is None and ws.subprotocol != offered[0]:
            await ws.close()
            raise ConnectionError(
                f"the server selected subprotocol {ws.subprotocol!r}, not {offered[0]!r}"
            )
        return ws

    def _set_connection(self, ws: Any) -> None:
        self._ws = ws
        self._connected.set()
        self._notify()

    @property
    def connected(self) -> bool:
        """True while a connection is open."""
        return self._ws is not None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Closes the connection (with a close handshake) and stops reconnecting.
        Idempotent."""
        self._closing = True
        ws = self._ws
        if ws is not None:
            try:
                await ws.close(code, reason)
            except Exception:
                pass
        task = self._run_task
        if task is not None and not task.done():
            if ws is None:
                task.cancel()  # between connections: nothing to close gracefully
            try:
                await asyncio.wait_for(asyncio.shield(task), 5.0)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        for bg in list(self._background):
            bg.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._fail_pending(Disconnected("the client is closed"))
        if self._trace is not None:
            self._trace.close()
        self._notify()

    async def drop_connection(self) -> None:
        """Aborts the TCP connection without a close handshake, as a network failure would
        (the server sees the player disconnect; with auto_reconnect the client resumes)."""
        ws = self._ws
        if ws is not None and ws.transport is not None:
            ws.transport.abort()

    async def wait_closed(self, timeout: float | None = None) -> tuple[int | None, str | None]:
        """Waits until the client is closed for good (closed, or disconnected without
        reconnecting) and returns the last (close_code, close_reason).

        Raises:
            TimeoutError: still connected (or reconnecting) after ``timeout`` seconds.
        """
        task = self._run_task
        if task is not None and not task.done():
            await asyncio.wait_for(asyncio.shield(task), self._timeout(timeout))
        return self.close_code, self.close_reason

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------------------------
    # Receive loop, reconnection and resume

    async def _run(self, ws: Any) -> None:
        while True:
            try:
                async for frame in ws:
                    self._receive(frame)
            except ConnectionClosed:
                pass
            except Exception:
                log.exception("kasagi client: receive loop failed")
                await ws.close(1011, "client error")
            self._on_disconnect(ws)
            if (
                self._closing
                or not self.auto_reconnect
                or self.close_code in NO_RECONNECT_CLOSE_CODES
            ):
                return
            reopened = await self._reconnect()
            if reopened is None:
                return
            ws = reopened

    def _on_disconnect(self, ws: Any) -> None:
        code = ws.close_code
        reason = ws.close_reason
        self.close_code = int(code) if code is not None else 1006
        self.close_reason = str(reason or "")
        self.disconnects.append((self.close_code, self.close_reason))
        self._ws = None
        self._connected.clear()
        self._fail_pending(
            Disconnected(f"connection lost (code {self.close_code} {self.close_reason!r})")
        )
        for room_id in [r for r, m in self.rooms.items() if m.version is None]:
            del self.rooms[room_id]  # their join failed with the connection
        for mirror in self.rooms.values():
            mirror.resync_pending = True  # not current until resumed: synced is False
        self._join_requests.clear()
        self._notify()

    def _fail_pending(self, error: Exception) -> None:
        for fut in (*self._pending.values(), *self._pings.values()):
            if not fut.done():
                fut.set_exception(error)
        self._pending.clear()
        self._pings.clear()

    async def _reconnect(self) -> Any:
        delay = self._reconnect_delay
        while not self._closing:
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            if self._closing:
                break
            try:
                ws = await self._open()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.debug("kasagi client: reconnection to %s failed: %s", self.url, err)
                if _refused(err):  # the same token would be refused again
                    return None
                delay = min(delay * 2, self._reconnect_max_delay)
                self.url = self.urls[(self.urls.index(self.url) + 1) % len(self.urls)]
                continue
            if self._closing:
                await ws.close()
                break
            self.reconnects += 1
            await self._resume_rooms(ws)
            self._set_connection(ws)
            return ws
        return None

    async def _resume_rooms(self, ws: Any) -> None:
        """Sends one JOIN_ROOM per mirror: with sessionToken and lastVersion when the mirror
        has them (the server answers with the missed deltas then an ACK, or a FULL_STATE),
        else a fresh join with the original attributes."""
        for mirror in self.rooms.values():
            payload = dict(mirror.attrs)
            msg: Message = {"type": "JOIN_ROOM", "roomId": mirror.room_id, "payload": payload}
            if mirror.session_token is not None:
                payload["sessionToken"] = mirror.session_token
                if mirror.version is not None:
                    payload["lastVersion"] = mirror.version
                if mirror.epoch is not None:
                    msg["epoch"] = mirror.epoch
            request_id = self._track_join(mirror.room_id, msg)
            fut = self._pending[request_id]
            fut.add_done_callback(functools.partial(self._resumed, mirror.room_id))
            try:
                await ws.send(encode_frame(self.encoding, msg))
            except ConnectionClosed:
                return  # the receive loop sees the close and tries again

    def _resumed(self, room_id: str, fut: asyncio.Future[Message]) -> None:
        if fut.cancelled():
            return
        err = fut.exception()
        if isinstance(err, KasagiError):
            log.warning("kasagi client: could not rejoin room %s: %s", room_id, err)
            self.rooms.pop(room_id, None)

    def _receive(self, frame: str | bytes) -> None:
        received_at = time.time()
        try:
            msg = decode_frame(self.encoding, frame)
        except FrameError as err:
            self.decode_errors.append(str(err))
            log.warning("kasagi client: %s", err)
            return
        if self._trace is not None:
            self._trace.write(kind="recv", client=self.name, t=received_at,
                              bytes=_frame_size(frame), msg=msg)
        self._dispatch(msg)

    def _dispatch(self, msg: Message) -> None:
        """Handles one decoded message: log, mirrors, waiting requests, events, callbacks."""
        self.messages.append(msg)
        self.received += 1
        kind = msg.get("type")
        room_id = msg.get("roomId")
        mirror = self.rooms.get(room_id) if isinstance(room_id, str) else None
        request_id = msg.get("requestId")

        if kind == "FULL_STATE" and mirror is not None:
            mirror.apply_full_state(msg)
            self._resolve(self._join_requests.pop(mirror.room_id, None), msg)
        elif kind == "DELTA_UPDATE" and mirror is not None:
            # Before the first FULL_STATE of a join, deltas cannot apply and need no resync.
            joining = mirror.version is None and mirror.room_id in self._join_requests
            if not mirror.apply_delta(msg) and not mirror.resync_pending and not joining:
                self._resync_soon(mirror, automatic=True)
        elif kind == "ACK":
            if mirror is not None and self._join_requests.get(mirror.room_id) == request_id:
                del self._join_requests[mirror.room_id]  # the end of a resume's deltas
                if mirror.version is None:  # resumed without a state to apply them to
                    self._resync_soon(mirror, automatic=False)
                else:
                    mirror.resync_pending = False  # the missed deltas are all applied
            self._resolve(request_id, msg)
        elif kind == "PONG":
            fut = self._pings.pop(msg.get("timestamp"), None)  # type: ignore[arg-type]
            if fut is not None and not fut.done():
                fut.set_result(msg)
        elif kind == "ERROR":
            self.errors.append(msg)
            if request_id is not None and request_id in self._pending:
                self._reject(request_id, KasagiError.from_message(msg))
            elif isinstance(room_id, str) and room_id in self._join_requests:
                # an ERROR about a room being joined, without the join's requestId
                self._reject(self._join_requests[room_id], KasagiError.from_message(msg))

        if kind in EVENT_TYPES:
            if self._events.qsize() >= self._history:
                self._events.get_nowait()
            self._events.put_nowait(msg)
        for callback in (*self._callbacks.get(str(kind), ()), *self._callbacks.get("*", ())):
            try:
                result = callback(msg)
                if inspect.isawaitable(result):
                    self._spawn(result)
            except Exception:
                log.exception("kasagi client: callback for %s failed", kind)
        self._notify()

    def _resolve(self, request_id: Any, msg: Message) -> None:
        fut = self._pending.pop(request_id, None) if request_id is not None else None
        if fut is not None and not fut.done():
            fut.set_result(msg)

    def _reject(self, request_id: int, error: Exception) -> None:
        fut = self._pending.pop(request_id, None)
        for room_id, rid in list(self._join_requests.items()):
            if rid == request_id:
                del self._join_requests[room_id]
        if fut is not None and not fut.done():
            fut.set_exception(error)

    def _resync_soon(self, mirror: RoomMirror, *, automatic: bool) -> None:
        """Sends RESYNC for a mirror that cannot apply what it receives; ``automatic``
        (a gap or an epoch change) counts it in ``resyncs``."""
        mirror.resync_pending = True
        if automatic:
            mirror.resyncs += 1
            self.resyncs += 1
            reason = mirror.rejected[-1] if mirror.rejected else None
            log.info("kasagi client: resyncing room %s (%s)", mirror.room_id, reason)
        self._spawn(self._send_quietly({"type": "RESYNC", "roomId": mirror.room_id}))

    async def _send_quietly(self, msg: Message) -> None:
        ws = self._ws
        if ws is None:
            return  # the resume after reconnecting brings a fresh state anyway
        try:
            await ws.send(encode_frame(self.encoding, msg))
        except ConnectionClosed:
            pass

    def _spawn(self, aw: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(aw)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _notify(self) -> None:
        """Wakes every wait_* helper so that it checks its condition again."""
        self._progress.set()
        self._progress = asyncio.Event()

    # ------------------------------------------------------------------------------------
    # Sending

    def _timeout(self, timeout: float | None) -> float:
        return self.request_timeout if timeout is None else timeout

    async def _connection(self, timeout: float | None) -> Any:
        """Returns the open connection, waiting for a reconnection if one is under way."""
        if self._ws is not None:
            return self._ws
        if self._closing or self._run_task is None or self._run_task.done():
            raise Disconnected("the client is not connected")
        try:
            await asyncio.wait_for(self._connected.wait(), self._timeout(timeout))
        except TimeoutError:
            raise Disconnected("the client is reconnecting; not connected in time") from None
        if self._ws is None:
            raise Disconnected("the client is not connected")
        return self._ws

    def mark(self) -> int:
        """Returns the index the next received message will have (see :meth:`wait_message`)."""
        return self.received

    def new_request_id(self) -> int:
        """Returns a requestId this client has not used yet."""
        return next(self._request_ids)

    async def send(self, msg: Message, *, timeout: float | None = None) -> int:
        """Encodes and sends any message dict as it is (no validation); returns the mark taken
        before sending.

        Raises:
            Disconnected: not connected (after waiting up to ``timeout`` for a reconnection).
        """
        frame = encode_frame(self.encoding, msg)
        mark = await self.send_raw(frame, timeout=timeout)
        if self._trace is not None:
            self._trace.write(kind="send", client=self.name, bytes=_frame_size(frame), msg=msg)
        return mark

    async def send_raw(self, data: str | bytes, *, timeout: float | None = None) -> int:
        """Sends one frame exactly as given: ``str`` as a text frame, ``bytes`` as a binary
        frame (for tests of bad input). Returns the mark taken before sending."""
        ws = await self._connection(timeout)
        mark = self.received
        try:
            await ws.send(data)
        except ConnectionClosed as err:
            raise Disconnected(f"connection lost while sending: {err}") from None
        return mark

    async def request(self, msg: Message, *, timeout: float | None = None) -> Message:
        """Sends ``msg`` with a requestId (a new one unless it has one) and returns the ACK
        that echoes it.

        Raises:
            KasagiError: the server answered with ERROR.
            Disconnected: the connection was lost first.
            TimeoutError: no answer within ``timeout`` seconds.
        """
        msg = dict(msg)
        request_id = msg.setdefault("requestId", self.new_request_id())
        fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = fut
        return await self._await_answer(request_id, fut, msg, timeout)

    async def _await_answer(
        self,
        key: int,
        fut: asyncio.Future[Message],
        msg: Message,
        timeout: float | None,
        table: dict[int, asyncio.Future[Message]] | None = None,
    ) -> Message:
        """Sends ``msg`` and waits for ``fut``, registered under ``key`` in ``table``
        (default: the requests by requestId)."""
        table = self._pending if table is None else table
        try:
            ws = await self._connection(timeout)
            if not fut.done():  # the connection it was meant for may be gone already
                try:
                    await ws.send(encode_frame(self.encoding, msg))
                except ConnectionClosed as err:
                    raise Disconnected(f"connection lost while sending: {err}") from None
            return await asyncio.wait_for(fut, self._timeout(timeout))
        except TimeoutError:
            raise TimeoutError(
                f"no answer to {msg.get('type')} within {self._timeout(timeout)} s"
            ) from None
        finally:
            if table.get(key) is fut:
                del table[key]
            if fut.done() and not fut.cancelled():
                fut.exception()  # retrieved: no "exception was never retrieved" noise

    def _track_join(self, room_id: str, msg: Message) -> int:
        """Gives a JOIN_ROOM a requestId and a future that its FULL_STATE (or resume ACK, or
        ERROR) resolves."""
        request_id = self.new_request_id()
        msg["requestId"] = request_id
        self._pending[request_id] = asyncio.get_running_loop().create_future()
        self._join_requests[room_id] = request_id
        return request_id

    # ------------------------------------------------------------------------------------
    # Protocol operations

    async def join(
        self,
        room_id: str,
        *,
        timeout: float | None = None,
        session_token: str | None = None,
        last_version: int | None = None,
        epoch: str | None = None,
        **attrs: Any,
    ) -> RoomMirror:
        """Joins a room and returns its mirror once its state is known.

        Args:
            room_id: the room (1..128 bytes of ``[A-Za-z0-9_.:-]``).
            timeout: seconds to wait for the answer.
            session_token: resume that session's player (same playerId) instead of creating
                a new one; usually left to the automatic resume.
            last_version: with session_token: the version the caller has; the server may
                answer with the missed deltas instead of a FULL_STATE.
            epoch: with last_version: the epoch that version belongs to.
            **attrs: the new player's attributes, e.g. ``playerName="ada"``.

        Raises:
            KasagiError: the server refused (ROOM_FULL, UNAVAILABLE, FORBIDDEN...).
            Disconnected, TimeoutError: no answer.
        """
        mirror = self.rooms.get(room_id)
        if mirror is None:
            mirror = RoomMirror(room_id)
            self.rooms[room_id] = mirror
        mirror.attrs = dict(attrs)
        payload: dict[str, Any] = dict(attrs)
        if session_token is not None:
            payload["sessionToken"] = session_token
        if last_version is not None:
            payload["lastVersion"] = last_version
        msg: Message = {"type": "JOIN_ROOM", "roomId": room_id, "payload": payload}
        if epoch is not None:
            msg["epoch"] = epoch
        deadline = asyncio.get_running_loop().time() + self._timeout(timeout)
        try:
            await self._connection(timeout)  # so that _track_join targets this connection
            request_id = self._track_join(room_id, msg)
            await self._await_answer(request_id, self._pending[request_id], msg, timeout)
            remaining = max(0.0, deadline - asyncio.get_running_loop().time())
            # A resume answered by deltas and an ACK leaves a fresh mirror without state
            # until its automatic resync: wait for that too.
            await self.wait_for(lambda: mirror.synced, timeout=remaining)
        except BaseException:
            self._join_requests.pop(room_id, None)
            if self.rooms.get(room_id) is mirror and mirror.version is None:
                del self.rooms[room_id]
            raise
        return mirror

    async def leave(self, room_id: str, *, timeout: float | None = None) -> None:
        """Leaves a room (the others get PLAYER_LEFT) and forgets its mirror; waits for the
        server's ACK.

        Raises:
            KasagiError: the server answered with ERROR (NOT_IN_ROOM...); the mirror is
                forgotten anyway.
        """
        try:
            await self.request({"type": "LEAVE_ROOM", "roomId": room_id}, timeout=timeout)
        finally:
            self.rooms.pop(room_id, None)
            self._join_requests.pop(room_id, None)

    async def update(
        self,
        room_id: str,
        patch: dict[str, Any],
        *,
        path: str | None = None,
        version: int | None = None,
        ack: bool = False,
        timeout: float | None = None,
    ) -> int | None:
        """Sends a STATE_UPDATE: the merge patch ``patch`` for this client's own player entry,
        or at the JSON Pointer ``path`` where the room allows it.

        Args:
            room_id: the room.
            patch: the merge patch (None values delete keys).
            path: where the patch applies (default: ``/players/<own playerId>``).
            version: optimistic check: refuse with CONFLICT if a field the patch writes was
                changed by someone else after this version.
            ack: wait for the server's ACK (or ERROR).
            timeout: seconds to wait for the ACK.

        Returns:
            With ``ack``, the room version that contains the update; otherwise None (errors
            then arrive as ERROR events).

        Raises:
            KasagiError: (with ``ack``) the server refused the update.
        """
        msg: Message = {"type": "STATE_UPDATE", "roomId": room_id, "payload": patch}
        if path is not None:
            msg["path"] = path
        if version is not None:
            msg["version"] = version
        if not ack:
            await self.send(msg, timeout=timeout)
            return None
        answer = await self.request(msg, timeout=timeout)
        return answer.get("version")

    async def resync(self, room_id: str, *, timeout: float | None = None) -> RoomMirror:
        """Asks for a fresh FULL_STATE of a room and returns the mirror once it is applied.

        Raises:
            KasagiError: the server answered with ERROR (NOT_IN_ROOM...).
        """
        request_id = self.new_request_id()
        mirror = self.rooms.get(room_id)
        if mirror is not None:
            mirror.resync_pending = True  # no automatic RESYNC on top of this one
        mark = await self.send(
            {"type": "RESYNC", "roomId": room_id, "requestId": request_id}, timeout=timeout
        )
        answer = await self.wait_message(
            predicate=lambda m: (
                (m.get("type") == "FULL_STATE" and m.get("roomId") == room_id)
                or (m.get("type") == "ERROR" and m.get("requestId") == request_id)
            ),
            since=mark,
            timeout=timeout,
        )
        if answer["type"] == "ERROR":
            if mirror is not None:
                mirror.resync_pending = False
            raise KasagiError.from_message(answer)
        return self.rooms[room_id]

    async def ping(self, *, timeout: float | None = None) -> float:
        """Sends PING and returns the round-trip time to the PONG, in seconds."""
        # PONG echoes the timestamp: make each one unique to tell the answers apart.
        self._last_timestamp = max(int(time.time() * 1000), self._last_timestamp + 1)
        stamp = self._last_timestamp
        fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pings[stamp] = fut
        started = time.perf_counter()
        await self._await_answer(
            stamp, fut, {"type": "PING", "timestamp": stamp}, timeout, self._pings
        )
        return time.perf_counter() - started

    # ------------------------------------------------------------------------------------
    # Waiting and events

    async def wait_for(self, predicate: Callable[[], T | None], timeout: float | None = None) -> T:
        """Waits until ``predicate()`` is true, checking after every received message and
        every connection change; returns its value.

        Raises:
            TimeoutError: not true within ``timeout`` seconds.
        """
        timeout = self._timeout(timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout} s")
            progress = self._progress
            try:
                await asyncio.wait_for(progress.wait(), remaining)
            except TimeoutError:
                pass

    async def wait_version(
        self, room_id: str, version: int, *, timeout: float | None = None
    ) -> RoomMirror:
        """Waits until the mirror of ``room_id`` is at ``version`` or later; returns it."""

        def reached() -> RoomMirror | None:
            mirror = self.rooms.get(room_id)
            if mirror is not None and mirror.version is not None and mirror.version >= version:
                return mirror
            return None

        try:
            return await self.wait_for(reached, timeout)
        except TimeoutError:
            mirror = self.rooms.get(room_id)
            at = "not joined" if mirror is None else f"at version {mirror.version}"
            raise TimeoutError(
                f"room {room_id} did not reach version {version} within "
                f"{self._timeout(timeout)} s ({at})"
            ) from None

    async def wait_message(
        self,
        type: str | None = None,
        *,
        room_id: str | None = None,
        predicate: Callable[[Message], bool] | None = None,
        since: int = 0,
        timeout: float | None = None,
    ) -> Message:
        """Returns the first received message at or after mark ``since`` that matches.

        ``since`` defaults to 0, the oldest message still kept: pass a :meth:`mark` (or the
        value a send method returned) to consider only what came after it.

        Args:
            type: the message type, e.g. ``"PLAYER_JOINED"``; None matches any.
            room_id: the roomId it must carry; None matches any.
            predicate: a further test of the message.
            since: the mark to search from.
            timeout: seconds to wait for it.
        """
        position = since

        def find() -> Message | None:
            nonlocal position
            first = self.received - len(self.messages)
            position = max(position, first)
            while position < self.received:
                msg = self.messages[position - first]
                position += 1
                if (
                    (type is None or msg.get("type") == type)
                    and (room_id is None or msg.get("roomId") == room_id)
                    and (predicate is None or predicate(msg))
                ):
                    return msg
            return None

        try:
            return await self.wait_for(find, timeout)
        except TimeoutError:
            what = f"{type or 'matching'} message" + (f" for room {room_id}" if room_id else "")
            raise TimeoutError(
                f"no {what} since mark {since} within {self._timeout(timeout)} s"
            ) from None

    async def next_event(self, *, timeout: float | None = None) -> Message:
        """Returns the next PLAYER_JOINED, PLAYER_LEFT, ROOM_EVENT or ERROR message not yet taken."""
        return await asyncio.wait_for(self._events.get(), self._timeout(timeout))

    def on(self, type: str, callback: Callback) -> Callable[[], None]:
        """Calls ``callback(message)`` for every received message of ``type`` (``"*"``: every
        message), after the mirrors are updated. A coroutine function's result is run as a
        task. Returns a function that removes the callback."""
        self._callbacks[type].append(callback)

        def remove() -> None:
            if callback in self._callbacks[type]:
                self._callbacks[type].remove(callback)

        return remove

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        return f"<kasagi.AsyncClient {self.url} {self.encoding} {state} rooms={list(self.rooms)}>"


# ----------------------------------------------------------------------------------------
# Blocking client


class Client:
    """A blocking client: an :class:`AsyncClient` running on a private event-loop thread.

    Every method blocks until done and raises what the asyncio client raises. Callbacks
    registered with :meth:`on` run on the client's thread. ``rooms`` and the mirrors in it
    are updated by that thread; reading them is safe, but use :meth:`wait_for` (whose
    predicate runs on the client's thread) to wait for a condition. Use as a context manager,
    or call :meth:`close`.

    Args:
        **options: passed to :class:`AsyncClient` (history, request_timeout, ...).

    Example::

        with Client().connect("ws://127.0.0.1:8080/sync") as client:
            room = client.join("lobby", playerName="ada")
            client.update("lobby", {"x": 1}, ack=True)
    """

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: AsyncClient | None = None

    # ------------------------------------------------------------------------------------
    # Plumbing

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coro.close()
            raise Disconnected("the client is not connected; call connect() first")
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result()
        except BaseException:
            fut.cancel()
            raise

    @property
    def aio(self) -> AsyncClient:
        """The underlying :class:`AsyncClient` (use it only from the client's thread)."""
        if self._client is None:
            raise Disconnected("the client is not connected; call connect() first")
        return self._client

    def _start_loop(self) -> None:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            try:
                loop.run_forever()
            finally:
                tasks = asyncio.all_tasks(loop)
                for task in tasks:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="kasagi-client", daemon=True)
        self._thread.start()
        ready.wait()
        self._loop = loop

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = None
        self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()

    # ------------------------------------------------------------------------------------
    # Connection

    def connect(
        self,
        url: str | Sequence[str],
        *,
        encoding: str = "json",
        auto_reconnect: bool = True,
        subprotocols: Iterable[str] | None = None,
        token: str | None = None,
        ca_file: str | None = None,
    ) -> Client:
        """Connects (see :meth:`AsyncClient.connect`); returns ``self``."""
        if self._loop is not None:
            raise RuntimeError("the client is already connected")
        self._start_loop()
        options = self._options

        async def make() -> AsyncClient:
            client = AsyncClient(**options)
            await client.connect(
                url,
                encoding=encoding,
                auto_reconnect=auto_reconnect,
                subprotocols=subprotocols,
                token=token,
                ca_file=ca_file,
            )
            return client

        try:
            self._client = self._call(make())
        except BaseException:
            self._stop_loop()
            raise
        return self

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Closes the connection and stops the client's thread. Idempotent."""
        if self._loop is None:
            return
        try:
            if self._client is not None:
                self._call(self._client.close(code, reason))
        finally:
            self._stop_loop()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def drop_connection(self) -> None:
        """See :meth:`AsyncClient.drop_connection`."""
        self._call(self.aio.drop_connection())

    def wait_closed(self, timeout: float | None = None) -> tuple[int | None, str | None]:
        """See :meth:`AsyncClient.wait_closed`."""
        return self._call(self.aio.wait_closed(timeout))

    # ------------------------------------------------------------------------------------
    # Protocol operations

    def join(self, room_id: str, *, timeout: float | None = None, **kwargs: Any) -> RoomMirror:
        """See :meth:`AsyncClient.join`."""
        return self._call(self.aio.join(room_id, timeout=timeout, **kwargs))

    def leave(self, room_id: str, *, timeout: float | None = None) -> None:
        """See :meth:`AsyncClient.leave`."""
        self._call(self.aio.leave(room_id, timeout=timeout))

    def update(
        self,
        room_id: str,
        patch: dict[str, Any],
        *,
        path: str | None = None,
        version: int | None = None,
        ack: bool = False,
        timeout: float | None = None,
    ) -> int | None:
        """See :meth:`AsyncClient.update`."""
        return self._call(
            self.aio.update(room_id, patch, path=path, version=version, ack=ack, timeout=timeout)
        )

    def resync(self, room_id: str, *, timeout: float | None = None) -> RoomMirror:
        """See :meth:`AsyncClient.resync`."""
        return self._call(self.aio.resync(room_id, timeout=timeout))

    def ping(self, *, timeout: float | None = None) -> float:
        """See :meth:`AsyncClient.ping`."""
        return self._call(self.aio.ping(timeout=timeout))

    def send(self, msg: Message, *, timeout: float | None = None) -> int:
        """See :meth:`AsyncClient.send`."""
        return self._call(self.aio.send(msg, timeout=timeout))

    def send_raw(self, data: str | bytes, *, timeout: float | None = None) -> int:
        """See :meth:`AsyncClient.send_raw`."""
        return self._call(self.aio.send_raw(data, timeout=timeout))

    def request(self, msg: Message, *, timeout: float | None = None) -> Message:
        """See :meth:`AsyncClient.request`."""
        return self._call(self.aio.request(msg, timeout=timeout))

    # ------------------------------------------------------------------------------------
    # Waiting and events

    def wait_for(self, predicate: Callable[[], T | None], timeout: float | None = None) -> T:
        """See :meth:`AsyncClient.wait_for` (``predicate`` runs on the client's thread)."""
        return self._call(self.aio.wait_for(predicate, timeout))

    def wait_version(
        self, room_id: str, version: int, *, timeout: float | None = None
    ) -> RoomMirror:
        """See :meth:`AsyncClient.wait_version`."""
        return self._call(self.aio.wait_version(room_id, version, timeout=timeout))

    def wait_message(
        self,
        type: str | None = None,
        *,
        room_id: str | None = None,
        predicate: Callable[[Message], bool] | None = None,
        since: int = 0,
        timeout: float | None = None,
    ) -> Message:
        """See :meth:`AsyncClient.wait_message`."""
        return self._call(
            self.aio.wait_message(
                type, room_id=room_id, predicate=predicate, since=since, timeout=timeout
            )
        )

    def next_event(self, *, timeout: float | None = None) -> Message:
        """See :meth:`AsyncClient.next_event`."""
        return self._call(self.aio.next_event(timeout=timeout))

    def on(self, type: str, callback: Callback) -> Callable[[], None]:
        """See :meth:`AsyncClient.on` (callbacks run on the client's thread)."""
        return self.aio.on(type, callback)

    def mark(self) -> int:
        """See :meth:`AsyncClient.mark`."""
        return self.aio.mark()

    # ------------------------------------------------------------------------------------
    # State (read from the client's thread through the loop, so always consistent)

    def _read(self, getter: Callable[[AsyncClient], T]) -> T:
        client = self.aio

        async def read() -> T:
            return getter(client)

        return self._call(read())

    @property
    def rooms(self) -> dict[str, RoomMirror]:
        """roomId to :class:`RoomMirror` (live: updated by the client's thread)."""
        return self.aio.rooms

    @property
    def messages(self) -> list[Message]:
        """A snapshot of the received messages kept (oldest first)."""
        return self._read(lambda c: list(c.messages))

    @property
    def errors(self) -> list[Message]:
        """A snapshot of the ERROR messages received."""
        return self._read(lambda c: list(c.errors))

    @property
    def decode_errors(self) -> list[str]:
        """A snapshot of the descriptions of undecodable frames."""
        return self._read(lambda c: list(c.decode_errors))

    @property
    def disconnects(self) -> list[tuple[int | None, str]]:
        """A snapshot of (code, reason) of every connection loss."""
        return self._read(lambda c: list(c.disconnects))

    @property
    def received(self) -> int:
        """How many messages were received in all."""
        return self.aio.received

    @property
    def resyncs(self) -> int:
        """RESYNCs sent automatically."""
        return self.aio.resyncs

    @property
    def reconnects(self) -> int:
        """Successful reconnections."""
        return self.aio.reconnects

    @property
    def connected(self) -> bool:
        """True while a connection is open."""
        return self._client is not None and self._client.connected

    @property
    def close_code(self) -> int | None:
        """The close code of the last connection loss."""
        return self.aio.close_code

    @property
    def close_reason(self) -> str | None:
        """The close reason of the last connection loss."""
        return self.aio.close_reason

    @property
    def encoding(self) -> str:
        """The wire encoding, ``"json"`` or ``"msgpack"``."""
        return self.aio.encoding

    def __repr__(self) -> str:
        inner = repr(self._client) if self._client is not None else "not connected"
        return f"<kasagi.Client {inner}>"
