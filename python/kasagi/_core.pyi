"""Type stubs of kasagi._core, the native core (cpp/bindings). Use the kasagi package, not
this module directly: its Pythonic API, defaults and documentation live in plain Python."""

from collections.abc import Callable
from typing import Any, Literal

_Format = Literal["json", "msgpack"]

# ----------------------------------------------------------------------------------------
# state: merge patch and the delta engine

def merge_patch_apply(target: Any, patch: Any) -> Any:
    """Returns ``target`` with the JSON Merge Patch (RFC 7386) ``patch`` applied. The inputs
    are not modified."""

def merge_patch_diff(a: Any, b: Any) -> Any:
    """Returns the minimal JSON Merge Patch that turns ``a`` into ``b`` ({} when equal)."""

class Document:
    """A document (nested dicts) plus the delta engine that records the changes made to it
    between two take_delta() calls."""

    def __init__(self, initial: dict[str, Any] = ...) -> None: ...
    def apply(self, patch: Any, path: str = "") -> bool:
        """Applies the merge patch ``patch`` at the JSON Pointer ``path``, creating
        intermediate dicts as needed. Returns True if the document changed. Raises
        ValueError for a malformed pointer, or a non-dict patch at the root."""
    def take_delta(self) -> dict[str, Any]:
        """Returns the minimal merge patch from the document at the previous take_delta() (or
        construction) to now, and starts a new batch."""
    @property
    def state(self) -> dict[str, Any]:
        """A copy of the document."""

# ----------------------------------------------------------------------------------------
# protocol: codecs

class DecodeError(ValueError):
    """A frame that is not a valid Kasagi message."""

    code: str  # "BAD_MESSAGE" or "UNKNOWN_TYPE"
    message: str
    request_id: int | None
    room_id: str | None

def encode(format: _Format, message: dict[str, Any]) -> bytes:
    """Encodes a message dict (wire keys; None values are omitted). Raises ValueError for a
    malformed message."""

def decode(format: _Format, data: bytes | bytearray | memoryview | str) -> dict[str, Any]:
    """Decodes one frame into a message dict with the wire keys that are present. Raises
    DecodeError when the frame is not a valid message."""

# ----------------------------------------------------------------------------------------
# server

class ServerConfig:
    """Plain settings struct; see kasagi.Config for meanings and defaults."""

    host: str
    port: int
    threads: int
    io_batch_wait: float
    static_dir: str
    jwt_secret: str
    jwt_public_key: str
    allowed_origins: list[str]
    tls_cert: str
    tls_key: str
    tick_rate: float
    room_empty_ttl: float
    max_rooms: int
    max_members_per_room: int
    delta_history: int
    delta_history_bytes: int
    conflict_window: int
    writable_paths: list[str]
    max_state_depth: int
    hook_threads: int
    session_grace: float
    idle_timeout: float
    handshake_timeout: float
    max_rooms_per_connection: int
    max_message_bytes: int
    max_frame_bytes: int
    rate_limit: float
    rate_burst: float
    rate_limit_close_after: float
    max_header_bytes: int
    max_header_count: int
    max_fragments: int
    permessage_deflate: bool
    read_bytes_per_second: int
    max_connections_per_ip: int
    join_rate_per_ip: float
    join_burst_per_ip: float
    send_queue_max_bytes: int
    send_queue_max_messages: int
    slow_consumer_window: float
    redis: str
    sentinel: str
    master_name: str
    cluster: str
    redis_password: str
    sentinel_password: str
    key_prefix: str
    durability: str
    lease_ttl: float
    snapshot_every: int
    snapshot_interval: float
    ops_max_len: int
    wait_timeout: float
    redis_replay_timeout: float
    drain_timeout: float
    log_level: str
    trace_file: str
    trace_rooms: list[str]
    def __init__(self) -> None: ...

class Server:
    """The native server. Every method releases the GIL while it works."""

    def __init__(self, config: ServerConfig) -> None:
        """Raises ValueError when the configuration is unusable."""
    def start(self) -> None:
        """Binds and starts the I/O threads; returns at once. Raises RuntimeError when the
        address cannot be bound or the server was already started."""
    def stop(self) -> None:
        """Immediate shutdown (clients get 1001 without waiting). Safe to call twice."""
    def drain(self, timeout: float) -> None:
        """Graceful shutdown: closes every client with 1001, waits up to ``timeout`` seconds,
        then stops."""
    @property
    def port(self) -> int:
        """The bound port (valid after start())."""
    @property
    def running(self) -> bool: ...
    def metrics(self) -> str:
        """Prometheus text exposition."""
    def stats(self) -> dict[str, int]:
        """{"connections", "rooms", "members"}."""
    def room_state(self, room_id: str) -> dict[str, Any] | None:
        """{"state", "version", "tick", "epoch"} of the room, or None if there is none."""
    def session_claims(self) -> list[dict[str, Any]]:
        """The verified token claims of every open WebSocket connection ({} if anonymous)."""

# ----------------------------------------------------------------------------------------
# room types and hooks (kasagi.rooms wraps these)

class RoomHandle:
    """A room as its hooks see it; usable only during a hook call, on its thread (else
    RuntimeError)."""

    @property
    def id(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def tick(self) -> int: ...
    @property
    def state(self) -> dict[str, Any]:
        """A copy of the whole document."""
    def get(self, path: str) -> Any:
        """The value at a JSON Pointer (a copy), or None."""
    def connected_players(self) -> list[str]: ...
    def set(self, path: str, value: Any) -> None:
        """Replaces the value at ``path`` (None deletes it). ValueError if refused."""
    def patch(self, path: str, value: Any) -> None:
        """Merges a merge patch into ``path``. ValueError if refused."""
    def send_event(self, name: str, data: Any, to: str) -> bool:
        """ROOM_EVENT to every connected player (``to`` = "") or one."""
    def kick(self, player: str, message: str) -> bool: ...

class HookValue:
    """A hook's corrected patch or attributes, converted for the room (kasagi.rooms)."""

    def __init__(self, value: Any) -> None:
        """TypeError or ValueError when no document can hold ``value`` (NaN, bytes, a key
        that is not a str...)."""

def add_room_type(
    server: Server,
    name: str,
    patterns: list[str],
    rules: list[tuple[str, list[str], float | None, float | None]],
    factory: Callable[[str, RoomHandle], Any] | None,
    tick_rate: float = 0.0,
) -> None:
    """Registers a room type before start(); ``factory(room_id, handle)`` returns the
    room's hook dispatcher (kasagi.rooms._Dispatcher), None: no hooks; ``tick_rate``:
    on_tick calls per second (0: the server's tick_rate, 20 when that is 0)."""

# ----------------------------------------------------------------------------------------
# broker: a blocking test surface over the C++ Broker (tests/broker/test_conformance.py)

_Status = Literal["ok", "fenced", "unavailable"]

class Subscription:
    """What a Broker delivers on one room's channel, queued until taken."""

    def get(self, timeout: float = 5.0) -> bytes | Literal["gap"] | None:
        """The next message; "gap" when the subscription was re-established after a break
        (messages may have been lost); None after ``timeout`` seconds without either."""
    def close(self) -> None:
        """Unsubscribes. Safe to call twice."""

class Broker:
    """A broker (see cpp/broker/broker.hpp for the contract). Every method that waits
    releases the GIL and raises TimeoutError after ``timeout`` seconds. ``data`` and
    ``sessions`` fields are bytes (MessagePack); ``epoch`` is a str."""

    def claim(self, room: str, token: str, ttl_ms: int, timeout: float = 10.0) -> tuple[_Status, str]:
        """Takes or renews the room's lease; returns (status, owner). "fenced": ``owner``
        holds it; "unavailable": owner is ""."""
    def release(self, room: str, token: str) -> None:
        """Gives the lease up if ``token`` holds it (fire and forget)."""
    def load(self, room: str, timeout: float = 10.0) -> dict[str, Any]:
        """{"status", "snapshot": dict | None, "ops": [entries after the snapshot]}."""
    def append(
        self, room: str, token: str, entry: dict[str, Any], message: bytes, timeout: float = 10.0
    ) -> _Status:
        """Appends ``entry`` (data, version, base, tick, epoch, sessions) to the log and
        publishes ``message``, if ``token`` holds the lease."""
    def append_all(
        self, room: str, token: str, entries: list[dict[str, Any]], message: bytes,
        timeout: float = 10.0,
    ) -> list[_Status]:
        """Appends ``entries`` as ``append`` does, issued together in order without waiting
        for each other (so pipelined); returns their statuses in that order."""
    def save_snapshot(
        self, room: str, token: str, snapshot: dict[str, Any], timeout: float = 10.0
    ) -> _Status:
        """Replaces the snapshot (data, version, tick, epoch, ts, sessions), if ``token``
        holds the lease."""
    def publish(self, room: str, message: bytes) -> None:
        """Publishes on the room channel (fire and forget)."""
    def subscribe(self, room: str) -> Subscription: ...
    def metrics(self) -> str:
        """The broker's metrics (kasagi_redis_*) in Prometheus text format."""
    def shutdown(self) -> None:
        """Stops the broker: nothing pending completes. Safe to call twice."""

def memory_broker(**options: Any) -> Broker:
    """An in-process broker. Takes the options of redis_broker (those that concern Redis
    alone are accepted and ignored). Raises TypeError for an unknown option."""

def redis_broker(
    url: str,
    *,
    key_prefix: str = "",
    ops_max_len: int = 1000,
    wait_replicas: int = 0,
    wait_timeout: float = 1.0,
    command_timeout: float = 2.0,
    probe_interval: float = 1.0,
    probe_timeout: float = 3.0,
    replay_timeout: float = 5.0,
) -> Broker:
    """A broker on Redis at ``url`` (redis://[[user]:password@]host[:port][/db]); connects
    in the background. Durations in seconds. Raises ValueError for a malformed URL and
    TypeError for an unknown option."""

def cluster_broker(nodes: str, *, password: str = "", **options: Any) -> Broker:
    """A broker on the Redis Cluster reached through ``nodes`` (HOST:PORT,...), each room
    routed to the master of its hash slot; the options of redis_broker. Raises ValueError
    for a malformed list."""

def key_slot(key: bytes) -> int:
    """The Redis Cluster hash slot of ``key``, as ``CLUSTER KEYSLOT`` computes it."""

def sentinel_broker(
    sentinels: str,
    master_name: str,
    *,
    password: str = "",
    sentinel_password: str = "",
    **options: Any,
) -> Broker:
    """A broker on the Redis master ``master_name`` found through the Sentinels at
    ``sentinels`` (HOST:PORT,...); ``password`` for the master, ``sentinel_password`` for
    the Sentinels; the options of redis_broker. Raises ValueError for a malformed list."""
