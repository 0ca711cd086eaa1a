"""Client-side copies of room state: JSON Merge Patch (RFC 7386) and :class:`RoomMirror`.

Sans-I/O: nothing here touches a socket, so the clients, the tests and notebooks share it.
Documents are what the protocol carries: dicts with string keys whose leaves are None, bool,
int, float, str or lists (lists are leaves: replaced whole, never merged).

A mirror follows the protocol's rule for applying deltas: a ``DELTA_UPDATE`` is applied only
when its ``baseVersion`` equals the mirror's ``version`` and its ``epoch`` is the mirror's;
anything else means something was missed, and the owner of the mirror must send ``RESYNC``.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "RoomMirror",
    "merge_patch",
    "merge_patch_diff",
    "merge_patch_in_place",
]

#: Why a mirror refused a delta: it has no state yet, the epoch changed, the delta does not
#: start at the mirror's version (something was missed), or it is older than the mirror.
Rejection = Literal["no-state", "epoch", "gap", "stale"]


def _copy(value: Any) -> Any:
    """Returns a deep copy of a document value (dicts and lists are copied)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def merge_patch_in_place(target: Any, patch: Any) -> Any:
    """Applies the merge patch ``patch`` to ``target``, modifying ``target`` when it is a dict.

    This is RFC 7386 section 2, MergePatch(Target, Patch): a dict patch merges key by key
    (None deletes a key, dicts recurse, anything else replaces); a patch that is not a dict
    replaces the whole target.

    Returns:
        The patched value: ``target`` itself when both are dicts, otherwise a new value (so
        always use the return value). ``patch`` is never modified and nothing in the result
        aliases it.
    """
    if not isinstance(patch, dict):
        return _copy(patch)
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            target[key] = merge_patch_in_place(target.get(key), value)
        else:
            target[key] = _copy(value)
    return target


def merge_patch(target: Any, patch: Any) -> Any:
    """Returns ``target`` with the merge patch ``patch`` applied (RFC 7386); neither argument
    is modified and the result shares nothing with them."""
    return merge_patch_in_place(_copy(target), patch)


def merge_patch_diff(source: Any, target: Any) -> Any:
    """Returns a merge patch that turns ``source`` into ``target`` (``{}`` when equal).

    Only what differs is in the patch: removed keys as None, changed leaves and lists whole,
    changed dicts recursively. RFC 7386 cannot express a None value inside a dict of
    ``target`` (None means "delete"): such members are deleted instead.
    """
    if not isinstance(source, dict) or not isinstance(target, dict):
        return _copy(target)
    patch: dict[str, Any] = {}
    for key in source:
        if key not in target:
            patch[key] = None
    for key, value in target.items():
        if key not in source:
            patch[key] = _copy(value)
            continue
        old = source[key]
        if isinstance(old, dict) and isinstance(value, dict):
            sub = merge_patch_diff(old, value)
            if sub:
                patch[key] = sub
        elif not _same(old, value):
            patch[key] = _copy(value)
    return patch


def _same(a: Any, b: Any) -> bool:
    """Equality that tells 1 from 1.0 and True from 1, as the wire does."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@dataclass(eq=False)
class RoomMirror:
    """What one client knows of one room: its state at ``version``, and its session.

    Created by a client's ``join``; kept current by the client's receive loop through
    :meth:`apply_full_state` and :meth:`apply_delta`. Usable alone in tests.

    Attributes:
        room_id: the room.
        state: the room document at ``version`` (owned by the mirror: updated in place).
        version: the room version ``state`` is at; None before the first FULL_STATE.
        tick: the room tick of the last message applied.
        epoch: the room's authority epoch; a change means "resync".
        player_id: this client's playerId in the room (from FULL_STATE).
        session_token: the token that resumes the player after a disconnect.
        attrs: the attributes the player joined with (sent again when rejoining afresh).
        versions: every version the mirror has taken, in order (bounded).
        full_states: FULL_STATEs applied.
        deltas: DELTA_UPDATEs applied.
        resyncs: RESYNCs sent automatically for this room because a delta could not apply.
        rejected: the deltas refused, as (reason, baseVersion, version) (bounded).
        resync_pending: the state is not known current: a RESYNC was sent, or the client is
            disconnected or resuming, and the fresh state has not arrived yet.
    """

    room_id: str
    state: dict[str, Any] = field(default_factory=dict)
    version: int | None = None
    tick: int | None = None
    epoch: str | None = None
    player_id: str | None = None
    session_token: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    history: int = 100_000
    versions: collections.deque[int] = field(init=False)
    full_states: int = 0
    deltas: int = 0
    resyncs: int = 0
    rejected: collections.deque[tuple[Rejection, int | None, int | None]] = field(init=False)
    resync_pending: bool = False

    def __post_init__(self) -> None:
        self.versions = collections.deque(maxlen=self.history)
        self.rejected = collections.deque(maxlen=1000)

    # ------------------------------------------------------------------------------------
    # Applying server messages

    def apply_full_state(self, msg: Mapping[str, Any]) -> None:
        """Replaces the state with a ``FULL_STATE`` message's and adopts its version, tick,
        epoch, playerId and sessionToken. Clears ``resync_pending``."""
        payload = msg.get("payload") or {}
        state = payload.get("state")
        self.state = _copy(state) if isinstance(state, dict) else {}
        self.version = msg.get("version")
        self.tick = msg.get("tick", self.tick)
        self.epoch = msg.get("epoch", self.epoch)
        self.player_id = payload.get("playerId", self.player_id)
        self.session_token = payload.get("sessionToken", self.session_token)
        self.full_states += 1
        self.resync_pending = False
        if self.version is not None:
            self.versions.append(self.version)

    def check_delta(self, msg: Mapping[str, Any]) -> Rejection | None:
        """Returns None if a ``DELTA_UPDATE`` applies on top of this mirror, or why not."""
        if self.version is None:
            return "no-state"
        epoch = msg.get("epoch")
        if epoch is not None and self.epoch is not None and epoch != self.epoch:
            return "epoch"
        base, version = msg.get("baseVersion"), msg.get("version")
        if base == self.version:
            return None
        if isinstance(version, int) and version <= self.version:
            return "stale"
        return "gap"

    def apply_delta(self, msg: Mapping[str, Any]) -> bool:
        """Applies a ``DELTA_UPDATE`` if its baseVersion is this mirror's version and its epoch
        unchanged.

        Returns:
            True if applied. False if not (recorded in ``rejected``): the mirror is left as it
            was and its owner should send RESYNC.
        """
        reason = self.check_delta(msg)
        if reason is not None:
            self.rejected.append((reason, msg.get("baseVersion"), msg.get("version")))
            return False
        self.state = merge_patch_in_place(self.state, msg.get("payload") or {})
        self.version = msg.get("version", self.version)
        self.tick = msg.get("tick", self.tick)
        self.deltas += 1
        if self.version is not None:
            self.versions.append(self.version)
        return True

    # ------------------------------------------------------------------------------------
    # Reading

    @property
    def synced(self) -> bool:
        """True when ``state`` is known current: a FULL_STATE arrived and no resync is
        pending."""
        return self.version is not None and not self.resync_pending

    @property
    def players(self) -> dict[str, Any]:
        """The room's ``players`` map (playerId to that player's map)."""
        players = self.state.get("players")
        return players if isinstance(players, dict) else {}

    @property
    def me(self) -> dict[str, Any] | None:
        """This client's own player entry, or None if it is not (or no longer) in the
        state."""
        return self.players.get(self.player_id) if self.player_id is not None else None

    def __repr__(self) -> str:
        return (
            f"<RoomMirror {self.room_id} version={self.version} epoch={self.epoch} "
            f"player={self.player_id} players={len(self.players)}>"
        )
