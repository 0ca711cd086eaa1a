"""Type stubs of kasagi._core, the native core (cpp/bindings). Use the kasagi package, not
this module directly: its Pythonic API, defaults and documentation live in plain Python."""

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
    tick_rate: float
    room_empty_ttl: float
    max_rooms: int
    max_members_per_room: int
    delta_history: int
    conflict_window: int
    writable_paths: list[str]
    max_state_depth: int
    session_grace: float
    idle_timeout: float
    handshake_timeout: float
    max_rooms_per_connection: int
    max_message_bytes: int
    max_frame_bytes: int
    rate_limit: float
    rate_burst: float
    rate_limit_close_after: float
    send_queue_max_bytes: int
    send_queue_max_messages: int
    slow_consumer_window: float
    drain_timeout: float
    log_level: str
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
