"""Room types: server-side rules and Python hooks for the rooms whose id matches a pattern.

A room type is a subclass of :class:`RoomType`. Its class attributes say which rooms it
governs (``rooms``: id patterns) and what clients may write (``writable``: path rules,
checked in C++ with no Python call). Its ``on_*`` methods are hooks: the room calls the ones
the class defines, one call at a time per room, on whichever hook thread is free (so not
always the same thread: keep per-room state on ``self``, not in ``threading.local``), with
the GIL, and never the others. One instance is made per room (at the room's authority).

Example::

    import kasagi
    from kasagi import Reject, RoomType, Rule

    class Arena(RoomType):
        rooms = "arena-*"
        writable = ("/players/$self", Rule("/players/$self/x", "number", min=0, max=100))

        def on_update(self, room, player, patch):
            if patch.get("name") == "admin":
                raise Reject("that name is reserved")
            return patch                      # or None: accept as sent

    server = kasagi.Server()
    server.add_room_type(Arena)

Or with decorated functions (:func:`room_type`), which build the same class::

    arena = kasagi.room_type("arena-*", writable=("/players/$self",))

    @arena.on_update
    def clamp(room, player, patch):
        ...

    server.add_room_type(arena)

What a hook may return, raise, and do with the :class:`Room`, and the threading model: see
docs/hooks.md. Hooks never run at a relay (an instance that is not the room's authority).
"""

from __future__ import annotations

import functools
import inspect
import logging
import reprlib
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = ["HOOKS", "Reject", "Room", "RoomType", "RoomTypeBuilder", "Rule", "room_type"]

log = logging.getLogger("kasagi.hooks")

#: The hooks a room type may define, with their bit in the native RoomHooks mask.
HOOKS: dict[str, int] = {
    "on_create": 1,
    "on_join": 2,
    "on_update": 4,
    "on_leave": 8,
    "on_tick": 16,
    "on_dispose": 32,
}

_TYPES = ("null", "bool", "int", "number", "string", "array", "map")


class Reject(Exception):
    """Raised by ``on_join`` or ``on_update`` to refuse the message: the client gets
    ``ERROR FORBIDDEN`` with ``reason`` as its message. Nothing changes."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Rule:
    """A path rule: clients may write at or below ``path`` (a JSON Pointer; ``*`` matches
    one key, ``$self`` the writer's playerId), with values of ``type`` (one name or a
    tuple: null, bool, int, number, string, array, map; None: any) and, for numbers, within
    ``[min, max]``. A leaf is judged by the longest pattern matching it."""

    path: str
    type: str | tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None

    def to_core(self) -> tuple[str, list[str], float | None, float | None]:
        """This rule as the core takes it: (pattern, types, minimum, maximum)."""
        types = [] if self.type is None else [self.type] if isinstance(self.type, str) else list(self.type)
        for t in types:
            if t not in _TYPES:
                raise ValueError(f"Rule {self.path!r}: unknown type {t!r} (one of {', '.join(_TYPES)})")
        return (self.path, types, self.min, self.max)


class Room:
    """A room as its hooks see it. Valid only during a hook call, on the thread running it
    (a room kept and used later raises RuntimeError).

    Changes made with :meth:`set` and :meth:`patch` go out in the room's next delta, like
    players' updates; events (:meth:`broadcast`, :meth:`send`) leave at once.
    """

    __slots__ = ("_h", "id")

    def __init__(self, handle: Any, room_id: str) -> None:
        self._h = handle
        self.id = room_id

    @property
    def version(self) -> int:
        """The room's version: changes applied so far."""
        return int(self._h.version)

    @property
    def tick(self) -> int:
        """The tick of the room's last delta."""
        return int(self._h.tick)

    @property
    def state(self) -> dict[str, Any]:
        """A copy of the whole document (changing it changes nothing: use set/patch)."""
        return dict(self._h.state)

    @property
    def players(self) -> dict[str, Any]:
        """A copy of ``state["players"]``: every player's entry, by playerId."""
        return dict(self._h.get("/players") or {})

    @property
    def connected(self) -> list[str]:
        """The playerIds connected now (players within their grace period are not)."""
        return list(self._h.connected_players())

    def get(self, path: str, default: Any = None) -> Any:
        """The value at JSON Pointer ``path`` (a copy), or ``default``."""
        value = self._h.get(path)
        return default if value is None else value

    def set(self, path: str, value: Any) -> None:
        """Replaces the value at ``path`` (None deletes it). Raises ValueError for the root,
        ``/players`` or a player's entry itself (joins, leaves and :meth:`kick` own those)."""
        self._h.set(path, value)

    def patch(self, path: str, patch: Mapping[str, Any]) -> None:
        """Merges ``patch`` (a JSON merge patch: None deletes a key) into the map at
        ``path``."""
        self._h.patch(path, patch)

    def broadcast(self, name: str, data: Any = None) -> None:
        """Sends ``ROOM_EVENT {name, data}`` to every connected player."""
        self._h.send_event(name, data, "")

    def send(self, player: str, name: str, data: Any = None) -> bool:
        """Sends ``ROOM_EVENT {name, data}`` to one player; False if it is not connected."""
        return bool(self._h.send_event(name, data, player))

    def kick(self, player: str, reason: str = "") -> bool:
        """Removes a player: it gets ``PLAYER_LEFT`` (reason ``kicked``, ``message`` =
        ``reason``), the others too; its entry is deleted. False if there is no such player."""
        return bool(self._h.kick(player, reason))

    def __repr__(self) -> str:
        return f"<kasagi.Room {self.id}>"


class RoomType:
    """Base class of room types. Override the hooks you need; the others are never called.

    Class attributes:
        name: what JOIN_ROOM's optional ``payload.roomType`` must say for these rooms
            (default: the class name).
        rooms: the room id patterns this type governs (``*`` matches any run of
            characters), a string or a tuple. Required.
        writable: path rules: strings (JSON Pointer patterns) or :class:`Rule`. Default:
            each player writes its own entry, any values.
        tick_rate: calls of ``on_tick`` per second. None (default): the server's
            ``tick_rate``, so each call's changes leave in that tick's delta; with a server
            ``tick_rate`` of 0 (deltas sent at once), 20.
    """

    name: ClassVar[str] = ""
    rooms: ClassVar[str | Sequence[str]] = ()
    writable: ClassVar[Sequence[str | Rule]] = ("/players/$self",)
    tick_rate: ClassVar[float | None] = None

    def on_create(self, room: Room) -> None:
        """The room starts here (created, or recovered at a new authority: then ``room``
        holds the recovered state)."""

    def on_join(
        self, room: Room, player: str, attrs: dict[str, Any], claims: dict[str, Any]
    ) -> dict[str, Any] | bool | None:
        """A new player (not a resume) is about to be added with ``attrs`` as its entry.
        ``claims``: its connection's verified token claims ({} without authentication).
        Return None/True to accept, a dict to use as the attributes instead, False or
        ``raise Reject(reason)`` to refuse (ERROR FORBIDDEN). ``claims`` may be left out of
        the signature."""

    def on_update(
        self, room: Room, player: str, patch: dict[str, Any]
    ) -> dict[str, Any] | bool | None:
        """A STATE_UPDATE passed the path rules. ``patch`` is the merge patch for the
        player's own entry (or for the update's ``path``, which the hook gets as ``path=``
        if its signature has it). Return None/True to accept, a dict to apply instead (a
        corrected patch), False or ``raise Reject(reason)`` to refuse."""

    def on_leave(self, room: Room, player: str, reason: str) -> None:
        """A player's entry was removed; reason: ``left``, ``timeout`` or ``kicked``."""

    def on_tick(self, room: Room, dt: float) -> None:
        """Called ``tick_rate`` times a second (at the room's tick boundaries when that is
        the server's rate) while the room has players; ``dt``: seconds since the previous
        call. Changes made here leave in this tick's delta (at once with a server
        ``tick_rate`` of 0)."""

    def on_dispose(self, room: Room) -> None:
        """The room goes away here: empty for ``room_empty_ttl``, handed to another
        authority, or the server stops."""

    # ------------------------------------------------------------------------------------
    # Registration helpers (used by kasagi.Server)

    @classmethod
    def type_name(cls) -> str:
        """The name JOIN_ROOM's ``payload.roomType`` must say: ``name``, or the class name."""
        return cls.name or cls.__name__

    @classmethod
    def on_tick_rate(cls) -> float:
        """``tick_rate`` checked, as the core takes it (0.0: the server's rate)."""
        rate = cls.tick_rate
        if rate is None:
            return 0.0
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1000:
            raise ValueError(f"room type {cls.type_name()}: tick_rate must be a number in "
                             f"(0, 1000] or None, not {rate!r}")
        return float(rate)

    @classmethod
    def patterns(cls) -> list[str]:
        """``rooms`` as a list of room id patterns; ValueError when it is empty or not strings."""
        rooms = [cls.rooms] if isinstance(cls.rooms, str) else list(cls.rooms)
        if not rooms or not all(isinstance(r, str) and r for r in rooms):
            raise ValueError(f"room type {cls.type_name()}: set `rooms` to room id patterns, "
                             "e.g. rooms = 'arena-*'")
        return rooms

    @classmethod
    def rules(cls) -> list[tuple[str, list[str], float | None, float | None]]:
        """``writable`` as the core takes it: (pattern, types, minimum, maximum) tuples;
        ValueError when a rule is invalid."""
        if isinstance(cls.writable, str):
            raise ValueError(f"room type {cls.type_name()}: `writable` must be a sequence")
        out = []
        for r in cls.writable:
            out.append(Rule(r).to_core() if isinstance(r, str) else r.to_core())
        return out

    @classmethod
    def hook_mask(cls) -> int:
        """The hooks this type overrides, as the core's bit mask (HOOKS); 0: rules only."""
        return sum(bit for hook, bit in HOOKS.items()
                   if getattr(cls, hook) is not getattr(RoomType, hook))


class RoomTypeBuilder:
    """A room type declared with decorated functions (see :func:`room_type`). Each
    decorator (``on_create``, ``on_join``, ``on_update``, ``on_leave``, ``on_tick``,
    ``on_dispose``) registers a function taking the hook's arguments without ``self``
    and returns it unchanged. :meth:`build` (called by ``Server.add_room_type``) makes the
    equivalent :class:`RoomType` subclass."""

    def __init__(self, rooms: str | Sequence[str], name: str,
                 writable: Sequence[str | Rule], tick_rate: float | None = None) -> None:
        self.rooms, self.name, self.writable = rooms, name, tuple(writable)
        self.tick_rate = tick_rate
        self.hooks: dict[str, Callable[..., Any]] = {}

    def _register(self, hook: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        if hook in self.hooks:
            raise ValueError(f"room type {self.name or self.rooms!r}: {hook} is set twice")
        self.hooks[hook] = fn
        return fn

    def on_create(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Registers ``fn(room)`` as the type's :meth:`RoomType.on_create` and returns it.
        ValueError if this builder has one already."""
        return self._register("on_create", fn)

    def on_join(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Registers ``fn(room, player, attrs, claims)`` (``claims`` may be left out) as
        the type's :meth:`RoomType.on_join` (accept, rewrite the attributes, or refuse) and
        returns it. ValueError if this builder has one already."""
        return self._register("on_join", fn)

    def on_update(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Registers ``fn(room, player, patch)`` (given ``path=`` too if it takes it) as the
        type's :meth:`RoomType.on_update` (accept, correct, or refuse) and returns it.
        ValueError if this builder has one already."""
        return self._register("on_update", fn)

    def on_leave(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Registers ``fn(room, player, reason)`` as the type's :meth:`RoomType.on_leave`
        and returns it. ValueError if this builder has one already."""
        return self._register("on_leave", fn)

    def on_tick(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Registers ``fn(room, dt)`` as the type's :meth:`RoomType.on_tick` and returns
        it. ValueError if this builder has one already."""
        return self._register("on_tick", fn)

    def on_dispose(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Registers ``fn(room)`` as the type's :meth:`RoomType.on_dispose` and returns it.
        ValueError if this builder has one already."""
        return self._register("on_dispose", fn)

    def build(self) -> type[RoomType]:
        """Returns the RoomType subclass these declarations make (a new one each time)."""
        def method(fn: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(fn)  # its signature (claims=, path=) is what the room inspects
            def hook(self: RoomType, *args: Any, **kwargs: Any) -> Any:
                return fn(*args, **kwargs)
            return hook

        namespace: dict[str, Any] = {"rooms": self.rooms, "name": self.name,
                                     "writable": self.writable, "tick_rate": self.tick_rate}
        namespace.update({hook: method(fn) for hook, fn in self.hooks.items()})
        label = self.name or "RoomType"
        return type(label if label.isidentifier() else "RoomType", (RoomType,), namespace)


def room_type(rooms: str | Sequence[str], *, name: str = "",
              writable: Sequence[str | Rule] = ("/players/$self",),
              tick_rate: float | None = None) -> RoomTypeBuilder:
    """Declares a room type with decorated functions instead of a class: ``rooms``,
    ``name``, ``writable`` and ``tick_rate`` mean what the :class:`RoomType` attributes do
    (the name defaults to ``"RoomType"``). Register the result with
    ``Server.add_room_type`` or ``kasagi serve --app module:attr``."""
    return RoomTypeBuilder(rooms, name, writable, tick_rate)


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


# Failures already logged at error level: (type name, hook, what failed). Every hook thread
# serves every hooked room: the lock makes "not logged yet" and "logged" one step.
_LOGGED_FAILURES: set[tuple[Any, ...]] = set()
_LOGGED_LOCK = threading.Lock()


class _Dispatcher:
    """One per room with hooks: calls the room type's hooks for the native room and turns
    what they do into what the room expects (None: accept; ("replace", value) with value a
    ``_core.HookValue``, ("reject", reason) or ("error", None)). Every failure of a hook
    ends here, whether it raised, returned something unusable, or (reported by the room,
    :meth:`report`) returned a patch that cannot apply: it is logged once, and the room
    carries on."""

    def __init__(self, cls: type[RoomType], room_id: str, handle: Any) -> None:
        from kasagi import _core  # here: kasagi.rooms itself works without the extension

        self._hook_value = _core.HookValue
        self.mask = cls.hook_mask()
        self.room = Room(handle, room_id)
        self._type = cls.type_name()
        self._impl: RoomType | None
        try:
            self._impl = cls()
        except Exception:
            self._failed("__init__")
            self._impl = None  # joins and updates fail with INTERNAL; no hook runs
            self.mask = HOOKS["on_join"] | HOOKS["on_update"]
            return
        self._claims = _accepts(cls.on_join, "claims")
        self._path = _accepts(cls.on_update, "path")

    def _log_failure(self, hook: str, what: tuple[Any, ...], problem: str,
                     detail: str | Callable[[], str] = "") -> None:
        # Once per distinct failure (type, hook, what): a hook that fails on every update
        # must not flood the log. Repeats are counted in the metric
        # kasagi_hook_failures_total (by the room) and logged at debug level. `detail` may be
        # a callable: made only for the one failure that is logged.
        key = (self._type, hook, *what)
        with _LOGGED_LOCK:
            again = key in _LOGGED_FAILURES
            if not again and len(_LOGGED_FAILURES) < 10_000:
                _LOGGED_FAILURES.add(key)
        if again:
            log.debug("room %s (type %s): %s %s, again", self.room.id, self._type, hook, problem)
            return
        if callable(detail):
            detail = detail()
        log.error("room %s (type %s): %s %s; the room keeps running (identical failures are "
                  "not logged again)%s", self.room.id, self._type, hook, problem,
                  "\n" + detail if detail else "")

    def _failed(self, hook: str) -> None:
        # The exception being handled, with its traceback; identical: the same exception
        # type raised at the same line.
        error = sys.exc_info()[1]
        tb = error.__traceback__ if error else None
        while tb is not None and tb.tb_next is not None:  # the innermost frame
            tb = tb.tb_next
        where = (tb.tb_frame.f_code.co_filename, tb.tb_lineno) if tb else None
        self._log_failure(hook, ("raised", type(error).__name__, where), f"raised {error!r}",
                          lambda: "".join(traceback.format_exception(error)).rstrip())

    def _verdict(self, hook: str, call: Callable[[], Any]) -> tuple[str, Any] | None:
        if self._impl is None:
            return ("error", None)
        try:
            result = call()
        except Reject as r:
            return ("reject", r.reason)
        except Exception:
            self._failed(hook)
            return ("error", None)
        if result is None or result is True:
            return None
        if result is False:
            return ("reject", "")
        if not isinstance(result, Mapping):
            kind = type(result).__name__
            self._log_failure(hook, ("returned", kind),
                              f"returned {kind!r}; expected None, a bool or a dict")
            return ("error", None)
        try:  # converted here rather than in the room, to be reported with its hook
            return ("replace", self._hook_value(result))
        except (TypeError, ValueError) as e:  # NaN, bytes, keys that are not str...
            # "non-finite number", not the position of it; for text that cannot be encoded,
            # its type (the message names the character)
            why = type(e).__name__ if isinstance(e, UnicodeError) else str(e).partition(":")[0]
            self._log_failure(hook, ("unusable", type(e).__name__, why),
                              f"returned {reprlib.repr(result)}, which no document can hold "
                              f"({e})")
            return ("error", None)

    def _notify(self, hook: str, call: Callable[[], Any]) -> bool:
        """Runs a notification hook; False if it raised (logged)."""
        if self._impl is None:
            return True
        try:
            call()
        except Exception:
            self._failed(hook)
            return False
        return True

    # Called by the native room (cpp/bindings/bind_hooks.cpp), with the GIL.

    def report(self, hook: str, problem: str, detail: str) -> None:
        """A failure the native side found in what a hook did (a corrected patch that cannot
        apply, say): logged once per ``problem``; ``detail`` may differ each time."""
        first, _, rest = detail.partition("\n")  # a Python error's "At:" lines go below
        self._log_failure(hook, ("native", problem), f"{problem}: {first}" if first else problem,
                          rest.strip())

    def create(self) -> bool:
        return self._notify("on_create", lambda: self._impl.on_create(self.room))  # type: ignore[union-attr]

    def join(self, player: str, attrs: dict[str, Any], claims: dict[str, Any]) -> Any:
        impl = self._impl
        if self._impl is not None and self._claims:
            return self._verdict("on_join", lambda: impl.on_join(  # type: ignore[union-attr]
                self.room, player, attrs, claims=claims))
        return self._verdict("on_join", lambda: impl.on_join(  # type: ignore[union-attr,call-arg]
            self.room, player, attrs))

    def update(self, player: str, path: str, patch: dict[str, Any]) -> Any:
        impl = self._impl
        if self._impl is not None and self._path:
            return self._verdict("on_update", lambda: impl.on_update(  # type: ignore[union-attr,call-arg]
                self.room, player, patch, path=path))
        return self._verdict("on_update", lambda: impl.on_update(  # type: ignore[union-attr]
            self.room, player, patch))

    def leave(self, player: str, reason: str) -> bool:
        return self._notify("on_leave", lambda: self._impl.on_leave(self.room, player, reason))  # type: ignore[union-attr]

    def tick(self, dt: float) -> bool:
        return self._notify("on_tick", lambda: self._impl.on_tick(self.room, dt))  # type: ignore[union-attr]

    def dispose(self) -> bool:
        return self._notify("on_dispose", lambda: self._impl.on_dispose(self.room))  # type: ignore[union-attr]


def register(core_server: Any, room_type: type[RoomType]) -> None:
    """Registers ``room_type`` on a native server (before it starts)."""
    from kasagi import _core

    if not (isinstance(room_type, type) and issubclass(room_type, RoomType)):
        raise TypeError(f"{room_type!r} is not a kasagi.RoomType subclass")
    factory = None
    if room_type.hook_mask():
        def factory(room_id: str, handle: Any) -> _Dispatcher:
            return _Dispatcher(room_type, room_id, handle)
    _core.add_room_type(core_server, room_type.type_name(), room_type.patterns(),
                        room_type.rules(), factory, room_type.on_tick_rate())


def room_types_of(obj: Any) -> list[type[RoomType]]:
    """The room types an ``--app`` target names: a RoomType subclass or a
    :class:`RoomTypeBuilder`, or an iterable of them."""
    def one(t: Any) -> type[RoomType] | None:
        if isinstance(t, RoomTypeBuilder):
            return t.build()
        return t if isinstance(t, type) and issubclass(t, RoomType) else None

    if (single := one(obj)) is not None:
        return [single]
    if isinstance(obj, Iterable) and not isinstance(obj, (str, bytes, Mapping)):
        types = [one(t) for t in obj]
        if types and all(t is not None for t in types):
            return types  # type: ignore[return-value]
    raise TypeError(f"{obj!r} is neither a kasagi.RoomType subclass nor a list of them")
