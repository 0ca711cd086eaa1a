"""Kasagi: real-time state synchronization for multiplayer games and collaborative apps.

Clients join rooms over WebSocket, send small state updates, and every member of a room sees
the same authoritative state through minimal deltas. The server is C++ (``kasagi._core``);
this package configures and runs it, and provides clients for tests, bots and scripts.

- :class:`Server`: a server in this process (``with kasagi.Server() as server: ...``).
- :class:`Config`: every setting, its default and the reason for it.
- :class:`RoomType`, :class:`Rule`, :class:`Reject`, :class:`Room`: room types with path
  rules and Python hooks (:mod:`kasagi.rooms`, docs/hooks.md).
- :class:`AsyncClient`, :class:`Client`: protocol clients (asyncio and blocking) that keep a
  :class:`RoomMirror` of each joined room.
- ``kasagi serve`` / ``python -m kasagi serve``: the production entrypoint (:mod:`kasagi.cli`).
"""

from __future__ import annotations

from importlib import metadata as _metadata

from kasagi import _core  # noqa: F401 - the native core; fails here if it is not built
from kasagi.client import AsyncClient, Client, Disconnected, FrameError, KasagiError
from kasagi.config import Config, ConfigError, docs_markdown
from kasagi.mirror import RoomMirror, merge_patch, merge_patch_diff, merge_patch_in_place
from kasagi.rooms import Reject, Room, RoomType, Rule, room_type
from kasagi.server import Server

__all__ = [
    "AsyncClient",
    "Client",
    "Config",
    "ConfigError",
    "Disconnected",
    "FrameError",
    "KasagiError",
    "Reject",
    "Room",
    "RoomMirror",
    "RoomType",
    "Rule",
    "Server",
    "__version__",
    "docs_markdown",
    "merge_patch",
    "merge_patch_diff",
    "merge_patch_in_place",
    "room_type",
]

try:
    __version__: str = _metadata.version("kasagi")
except _metadata.PackageNotFoundError:  # running from a source tree (PYTHONPATH=python)
    __version__ = "0+unknown"

del _metadata
